"""Nightly: one Cost Explorer call for the month so far, grouped by the Owner tag.

The ledger is an estimate from list prices; this records what AWS actually billed each user
(through yesterday: Cost Explorer lags up to a day), shown as "billed through <date>".
Needs the Owner tag activated as a cost allocation tag (docs/admin/portal.md).
"""
from __future__ import annotations

import logging
from datetime import date, timedelta

import boto3

from hc_portal.launch import OWNER_TAG, PORTAL_TAG
from hc_portal.settings import Settings, current
from hc_portal.store import RECONCILE_ITEM, Store

log = logging.getLogger()
log.setLevel(logging.INFO)


def period(today: date) -> tuple[str, str]:
    """[first of the month of yesterday, today): on the 1st it covers the whole last month."""
    yesterday = today - timedelta(days=1)
    return yesterday.replace(day=1).isoformat(), today.isoformat()


def billed_by_owner(results: list[dict]) -> dict[str, float]:
    """Cost Explorer ResultsByTime grouped by ``Owner$<sub>`` → {sub: USD}; untagged is dropped."""
    out: dict[str, float] = {}
    for result in results:
        for group in result.get("Groups", []):
            try:
                key = group["Keys"][0]
                amount = float(group["Metrics"]["UnblendedCost"]["Amount"])
            except (KeyError, IndexError, TypeError, ValueError):
                log.warning("skipping an unreadable Cost Explorer group: %r", group)
                continue
            owner = key.split("$", 1)[1] if "$" in key else key
            if owner:
                out[owner] = out.get(owner, 0.0) + amount
    return out


def reconcile(ce, store: Store, settings: Settings, today: date) -> dict:
    start, end = period(today)
    request = {
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "MONTHLY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "TAG", "Key": OWNER_TAG}],
        "Filter": {"Tags": {"Key": PORTAL_TAG, "Values": [settings.portal_name]}},
    }
    results, calls, token = [], 0, None
    while True:
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        calls += 1
        results += page.get("ResultsByTime", [])
        token = page.get("NextPageToken")
        if not token:
            break
    through = (today - timedelta(days=1)).isoformat()
    billed = billed_by_owner(results)
    for owner, usd in billed.items():
        store.set_billed(owner, usd, through)
    store.set_billed(RECONCILE_ITEM, sum(billed.values()), through)
    return {"calls": calls, "users": len(billed), "billed_through": through, "period": [start, end]}


def handle(event: dict, context=None) -> dict:
    settings = current()
    report = reconcile(boto3.client("ce", region_name="us-east-1"), Store(settings), settings, date.today())
    log.info("reconciled: %s", report)
    return report
