"""Spend ledger arithmetic: priced intervals → accumulated, last-7-day and daily spend.

A compute interval runs from an instance's `running` event to its next stopping/stopped/
shutting-down/terminated event and is priced at the type's hourly price; a storage interval runs
from launch to termination (EBS is billed while stopped) at GB × $/GB-month / 730 h. An open
interval (no end yet) is priced up to `now`.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

RUNNING_STATES = {"running"}
RETAIN_DAYS = 400  # closed intervals expire (DynamoDB TTL) after 13 months: budgets are monthly
STOP_STATES = {"stopping", "stopped", "shutting-down", "terminated"}


@dataclass(frozen=True)
class Interval:
    instance_id: str
    kind: str  # "compute" | "storage"
    start: datetime
    end: datetime | None
    rate_per_hour: float

    def cost(self, lo: datetime, hi: datetime) -> float:
        """USD accrued inside [lo, hi)."""
        start = max(self.start, lo)
        end = min(self.end or hi, hi)
        if end <= start:
            return 0.0
        return (end - start).total_seconds() / 3600 * self.rate_per_hour


def parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def month_start(now: datetime) -> datetime:
    return datetime(now.year, now.month, 1, tzinfo=timezone.utc)


def spend(intervals: list[Interval], lo: datetime, hi: datetime) -> float:
    return sum(i.cost(lo, hi) for i in intervals)


def daily_series(intervals: list[Interval], now: datetime, days: int = 7) -> list[dict]:
    """Spend per UTC day for the last ``days`` days, today (so far) last."""
    today = now.astimezone(timezone.utc).date()
    out = []
    for back in range(days - 1, -1, -1):
        day = today - timedelta(days=back)
        lo = day_start(day)
        hi = min(lo + timedelta(days=1), now)
        out.append({"date": day.isoformat(), "usd": round(spend(intervals, lo, hi), 4)})
    return out


def summary(intervals: list[Interval], now: datetime) -> dict:
    """What the dashboard shows: month-to-date (the budget's basis), last 7 days, daily series,
    and the spend rate right now."""
    series = daily_series(intervals, now)
    earliest = min((i.start for i in intervals), default=now)
    return {
        "month_to_date": round(spend(intervals, month_start(now), now), 4),
        "last_7_days": round(sum(d["usd"] for d in series), 4),
        "retained_total": round(spend(intervals, earliest, now), 4),  # the last 13 months (TTL)
        "daily": series,
        "rate_per_hour": round(sum(i.rate_per_hour for i in intervals if i.end is None and i.start <= now), 4),
    }


def compute_key(instance_id: str, start: datetime) -> str:
    return f"{instance_id}#compute#{iso(start)}"


def storage_key(instance_id: str) -> str:
    return f"{instance_id}#storage"


def to_item(owner: str, interval: Interval) -> dict:
    key = compute_key(interval.instance_id, interval.start) if interval.kind == "compute" else storage_key(interval.instance_id)
    item = {"owner": owner, "interval": key, "instance_id": interval.instance_id, "kind": interval.kind,
            "start": iso(interval.start), "rate_per_hour": str(interval.rate_per_hour)}
    if interval.end is not None:
        item["end"] = iso(interval.end)
        item["expires_at"] = expires_at(interval.end)
    return item


def expires_at(end: datetime) -> int:
    """Epoch seconds at which DynamoDB may delete a closed interval."""
    return int((end + timedelta(days=RETAIN_DAYS)).timestamp())


def from_item(item: dict) -> Interval:
    return Interval(
        instance_id=item["instance_id"],
        kind=item["kind"],
        start=parse_time(item["start"]),
        end=parse_time(item["end"]) if item.get("end") else None,
        rate_per_hour=float(item["rate_per_hour"]),
    )
