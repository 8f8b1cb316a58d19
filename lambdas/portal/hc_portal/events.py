"""EC2 state-change events (EventBridge) → ledger intervals.

Idempotent and order-tolerant: duplicates hit conditional writes, and a `running` event that
arrives after a later stop is closed at that stop at once.
"""
from __future__ import annotations

import logging

from hc_portal import ledger
from hc_portal.settings import Settings, current
from hc_portal.store import Store

log = logging.getLogger()
log.setLevel(logging.INFO)


def apply(event: dict, store: Store, settings: Settings) -> str:
    """Record one event; returns what was done (for logs and tests)."""
    detail = event.get("detail") or {}
    instance_id, state, when = detail.get("instance-id"), detail.get("state"), event.get("time")
    if not (instance_id and state and when):
        return "ignored: not an EC2 state-change event"
    try:
        at = ledger.parse_time(when)
    except (TypeError, ValueError):
        # A malformed event can never succeed; retrying it would only fill the dead-letter queue.
        return f"ignored: unreadable time {when!r}"
    record = store.instance_by_id(instance_id)
    if record is None:
        return f"ignored: {instance_id} is not a portal VM"
    owner = record["owner"]
    storage = ledger.Interval(instance_id, "storage", at, None, settings.storage_rate_per_hour(int(record.get("volume_gb", 0))))
    if state in ("pending", "running"):
        store.open_interval(owner, storage)
    if state == "running":
        price = settings.hourly_price(record["instance_type"]) or 0.0
        last_stop = ledger.parse_time(record["last_stop_at"]) if record.get("last_stop_at") else None
        end = last_stop if last_stop and last_stop > at else None
        opened = store.open_interval(owner, ledger.Interval(instance_id, "compute", at, end, price))
        return f"{instance_id}: compute interval {'opened' if opened else 'already open'} at {ledger.iso(at)}"
    if state in ledger.STOP_STATES:
        closed = store.close_intervals(owner, instance_id, "compute", at)
        if state == "terminated":
            closed += store.close_intervals(owner, instance_id, "storage", at)
        last = record.get("last_stop_at")
        if not last or ledger.parse_time(last) < at:
            store.mark_instance(owner, instance_id, last_stop_at=ledger.iso(at))
        return f"{instance_id}: {state}, closed {closed} interval(s)"
    return f"{instance_id}: {state} recorded"


def handle(event: dict, context=None) -> dict:
    """Lambda entry point for the EventBridge rule (one event per invocation)."""
    settings = current()
    result = apply(event, Store(settings), settings)
    log.info(result)
    return {"result": result}
