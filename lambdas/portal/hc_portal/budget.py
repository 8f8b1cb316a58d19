"""Budget rules and the idle rule, as pure functions."""
from __future__ import annotations

from datetime import datetime, timedelta

from hc_portal.errors import ApiError
from hc_portal.ledger import month_start


def next_month(now: datetime) -> datetime:
    start = month_start(now)
    return (start + timedelta(days=32)).replace(day=1)


def status(*, spent: float, budget: float, warn_ratio: float, now: datetime) -> dict:
    """ok below warn_ratio × budget, warn from there, exceeded at 100 % (a $0 budget is exceeded
    at once: it means "no spending")."""
    ratio = spent / budget if budget > 0 else (1.0 if spent >= 0 else 0.0)
    state = "exceeded" if ratio >= 1 else "warn" if ratio >= warn_ratio else "ok"
    return {"monthly_usd": round(budget, 2), "spent_usd": round(spent, 4), "ratio": round(ratio, 4),
            "warn_ratio": warn_ratio, "state": state, "resets": next_month(now).date().isoformat()}


def refuse_if_exceeded(budget_status: dict, action: str) -> None:
    if budget_status["state"] == "exceeded":
        raise ApiError(
            403,
            f"Your monthly budget of ${budget_status['monthly_usd']:.2f} is used up "
            f"(${budget_status['spent_usd']:.2f} spent), so you cannot {action} until "
            f"{budget_status['resets']} unless an admin raises your budget.",
            code="budget_exceeded",
        )


def is_idle(datapoints: list[dict], *, cpu_percent: float, minutes: int, now: datetime,
            running_since: datetime, period_seconds: int = 300) -> bool:
    """Idle = running for at least ``minutes`` and every CloudWatch CPU maximum in the last
    ``minutes`` below ``cpu_percent``, with the window (mostly) covered by datapoints. No data
    (metrics not published yet, or a sandbox) is never idle: we only stop what we can see."""
    window = timedelta(minutes=minutes)
    if now - running_since < window:
        return False
    recent = [d for d in datapoints if d["Timestamp"] >= now - window]
    expected = minutes * 60 // period_seconds
    if not recent or len(recent) < max(1, int(expected * 0.8)):
        return False
    return all(d["Maximum"] < cpu_percent for d in recent)
