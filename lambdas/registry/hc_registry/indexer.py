"""The indexer: one SQS batch of S3 events → exact CloudCatalog index files.

Steps per batch: parse each message (a bad one is reported as a batch item failure, so SQS retries
it and finally moves it to the dead-letter queue); keep the newest event per key; on a versioned
bucket, ask S3 which version is current where that event deleted one version; record the
changes in DynamoDB (newer-than-stored only, see ``state``); merge each touched partition's
pending changes into its CSV under the partition lease; then rewrite catalog.json once under the
bucket's catalog lease. S3 writes per batch are one per touched partition plus one catalog, never
one per object.
"""
from __future__ import annotations

import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from enum import Enum
from typing import Iterable, NamedTuple
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from hc_registry.catalog import (catalog_from_summaries, csv_to_rejects, csv_to_rows, rejects_to_csv, rows_to_csv,
                                 summarize, to_json)
from hc_registry.rules import CATALOG_KEY, REJECTS_PARTITION, BucketRules, Parsed, Reject, Row
from hc_registry.state import Change, Lease, StateStore, order_token

log = logging.getLogger("hc_registry")


class BadMessage(ValueError):
    """A message that is not an S3 event this indexer can use."""


class Effect(Enum):
    """What an S3 event says about the object its key shows now (the key's current version)."""

    CURRENT = "current"  # the object the event (or S3, asked) names is the current version: its row
    NO_CURRENT = "no current"  # the key shows nothing (deleted, or a delete marker on top): no row
    LOOK_UP = "look up"  # one version was deleted: only S3 knows which version is current now


_REMOVALS = ("ObjectRemoved", "LifecycleExpiration")
# The bucket notifications the indexer needs (stack and sandbox): every change of a key's current
# version comes as one of these; lifecycle expirations are not ObjectRemoved events.
NOTIFIED_EVENTS = tuple(f"s3:{kind}:*" for kind in ("ObjectCreated", *_REMOVALS))


def event_effect(event_name: str, *, versioned: bool) -> Effect | None:
    """An S3 event name → its effect on the key's current object; None for events that leave it
    as it is (tagging, ACLs, restores, lifecycle transitions).

    A created object goes on top of the key's versions. A removal, by a request or by a
    lifecycle rule, deletes the object of an unversioned bucket. On a versioned bucket a
    DeleteMarkerCreated puts a marker on top; any other removal deletes one version for good,
    and the event names that version but not whether it was current: it may have been a
    noncurrent version (nothing changes), the current one (the version below shows) or a delete
    marker (the version below shows again)."""
    kind, _, detail = event_name.partition(":")
    if kind == "ObjectCreated":
        return Effect.CURRENT
    if kind not in _REMOVALS:
        return None
    if versioned and detail != "DeleteMarkerCreated":
        return Effect.LOOK_UP
    return Effect.NO_CURRENT


class ObjectEvent(NamedTuple):
    """One S3 event of a data key: its effect, the size of the object it shows, its order."""

    bucket: str
    key: str
    size: int
    order: str
    effect: Effect

    def with_current_size(self, size: int | None) -> ObjectEvent:
        """This LOOK_UP event settled by S3's answer: the current version's size (None when the
        key shows nothing). The event keeps its own order: S3 answered after the event, so the
        answer is at least as new, and any later event still orders after it."""
        if size is None:
            return self._replace(effect=Effect.NO_CURRENT, size=0)
        return self._replace(effect=Effect.CURRENT, size=size)


def current_version_size(listing: dict, key: str) -> int | None:
    """The size of ``key``'s current version in a ListObjectVersions response for ``Prefix=key``,
    or None when the key shows nothing (a delete marker on top, or no version left)."""
    for version in listing.get("Versions", []):
        if version["Key"] == key and version["IsLatest"]:
            return int(version["Size"])
    return None


def parse_message(body: str, buckets: dict[str, BucketRules]) -> list[ObjectEvent]:
    """An SQS body → its S3 object events ([] for the s3:TestEvent that S3 sends when
    notifications are configured)."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError) as exc:
        raise BadMessage(f"body is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise BadMessage("body is not a JSON object")
    if message.get("Event") == "s3:TestEvent":
        return []
    records = message.get("Records")
    if not isinstance(records, list):
        raise BadMessage("no Records list in the message")
    events = []
    for record in records:
        try:
            name = record["eventName"]
            bucket = record["s3"]["bucket"]["name"]
            obj = record["s3"]["object"]
            key = unquote_plus(obj["key"])
            order = order_token(obj.get("sequencer"), record["eventTime"])
            size = int(obj.get("size") or 0)
        except (KeyError, TypeError, ValueError) as exc:
            raise BadMessage(f"malformed S3 record: {exc!r}") from None
        if bucket not in buckets:
            raise BadMessage(f"bucket {bucket!r} is not a registry bucket")
        effect = event_effect(name, versioned=buckets[bucket].versioned)
        if effect is not None:
            events.append(ObjectEvent(bucket, key, size, order, effect))
    return events


def to_change(rules: BucketRules, event: ObjectEvent) -> Change:
    """An S3 event of a data key, looked up already → the change it makes to one partition."""
    if event.effect is Effect.LOOK_UP:
        raise ValueError(f"{event.key}: look the current version up before recording the event")
    deleted = event.effect is Effect.NO_CURRENT
    classified = rules.classify(event.key, event.size)
    if classified is None:
        raise ValueError(f"{event.key} is one of the registry's index objects, not data")
    if isinstance(classified, Parsed):
        row = classified.row
        return Change(rules.name, classified.partition, event.key, event.order, deleted,
                      (row.start, row.stop, row.datakey, str(row.filesize)))
    assert isinstance(classified, Reject)
    return Change(rules.name, REJECTS_PARTITION, event.key, event.order, deleted,
                  (classified.key, classified.reason, str(classified.filesize)))


def merge(existing: dict[str, tuple], states: dict[str, dict], keys: Iterable[str]) -> dict[str, tuple]:
    """Set the row of each changed key to its stored state ({identity: cells}; data rows are
    identified by their key, rejects too): deleted or never recorded → no row."""
    rows = dict(existing)
    for key in keys:
        state = states.get(key)
        if state is None or state["deleted"]:
            rows.pop(key, None)
        else:
            rows[key] = tuple(state["cells"])
    return rows


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Indexer:
    """Thin boto3 shell over the pure functions; the same object serves Lambda, CLI and sandbox."""

    def __init__(self, buckets: dict[str, BucketRules], *, s3, store: StateStore):
        self.buckets = buckets
        self.s3 = s3
        self.store = store

    # ------------------------------------------------------------------ SQS batch
    def handle(self, event: dict, *, deadline: float | None = None) -> dict:
        """Lambda SQS event → ``{"batchItemFailures": [...]}`` (ReportBatchItemFailures).
        ``deadline`` (epoch seconds): stop merging rounds after it (the function's timeout)."""
        failed, touching = self.record(event.get("Records", []))
        failed |= self.publish(touching, deadline=deadline)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in sorted(failed)]}

    def record(self, messages: list[dict]) -> tuple[set[str], dict[tuple[str, str], set[str]]]:
        """Step 1: parse the messages, keep the newest event per key, look up the current version
        where that event cannot tell it, and record the changes (durably, with dirty markers).
        Returns the ids of messages that failed, and {(bucket, partition): message ids} touched."""
        failed: set[str] = set()
        newest: dict[tuple[str, str], ObjectEvent] = {}
        senders: dict[tuple[str, str], set[str]] = {}
        for message in messages:
            message_id = message.get("messageId", "")
            try:
                events = parse_message(message.get("body"), self.buckets)
            except BadMessage as exc:
                log.warning("message %s reported as failed: %s", message_id, exc)
                failed.add(message_id)
                continue
            for event in events:
                if self.buckets[event.bucket].is_index_object(event.key):
                    continue  # the registry's own writes: never looked up, never indexed
                ident = (event.bucket, event.key)
                senders.setdefault(ident, set()).add(message_id)
                held = newest.get(ident)
                if held is None or event.order > held.order:
                    newest[ident] = event
        lookups = sum(1 for e in newest.values() if e.effect is Effect.LOOK_UP)
        try:
            changes = [to_change(self.buckets[e.bucket], e) for e in self.look_up(list(newest.values()))]
            self.store.apply(changes)
        except Exception:  # noqa: BLE001 - every message with a change is retried as a whole
            log.exception("recording %d changes failed", len(newest))
            failed |= {m for ids in senders.values() for m in ids}
            return failed, {}
        touching: dict[tuple[str, str], set[str]] = {}
        for change in changes:
            touching.setdefault((change.bucket, change.partition), set()).update(senders[(change.bucket, change.key)])
        rejects = sum(1 for c in changes if c.partition == REJECTS_PARTITION)
        log.info("recorded %d changes (%d rejects, %d current versions looked up) from %d messages (%d failed)",
                 len(changes), rejects, lookups, len(messages), len(failed))
        return failed, touching

    def look_up(self, events: list[ObjectEvent], *, workers: int = 8) -> list[ObjectEvent]:
        """Settle each LOOK_UP event with one ListObjectVersions of its key (in parallel); the
        others pass unchanged. Only versioned buckets have LOOK_UP events."""
        pending = [e for e in events if e.effect is Effect.LOOK_UP]
        if not pending:
            return events
        with ThreadPoolExecutor(max_workers=min(workers, len(pending))) as pool:
            sizes = dict(zip(pending, pool.map(self.current_size_in_s3, pending)))
        return [e.with_current_size(sizes[e]) if e in sizes else e for e in events]

    def current_size_in_s3(self, event: ObjectEvent) -> int | None:
        # S3 lists a key's versions and markers newest first, and no key under the prefix sorts
        # before the key itself: the first entry is the key's current version or marker.
        listing = self.s3.list_object_versions(Bucket=event.bucket, Prefix=event.key, MaxKeys=1)
        return current_version_size(listing, event.key)

    def publish(self, touching: dict[tuple[str, str], set[str]], *, deadline: float | None = None) -> set[str]:
        """Step 2: merge each touched partition's pending changes into its CSV, then rewrite each
        affected catalog.json once. Returns the message ids whose partition could not be published."""
        failed: set[str] = set()
        catalogs: dict[str, set[str]] = {}
        for (bucket, partition), ids in sorted(touching.items()):
            try:
                self.publish_partition(bucket, partition, deadline=deadline)
            except Exception:  # noqa: BLE001 - one partition's trouble must not block the others
                log.exception("publishing %s %s failed", bucket, partition)
                failed |= ids
                continue
            if partition != REJECTS_PARTITION:
                catalogs.setdefault(bucket, set()).update(ids)
        for bucket, ids in catalogs.items():
            try:
                self.publish_catalog(bucket, deadline=deadline)
            except Exception:  # noqa: BLE001
                log.exception("publishing the catalog of %s failed", bucket)
                failed |= ids
        return failed

    # ------------------------------------------------------------------ partitions
    def publish_partition(self, bucket: str, partition: str, *, deadline: float | None = None) -> None:
        """Merge the partition's pending changes into its CSV, as the one lease holder."""
        rules = self.buckets[bucket]
        pk, sk = self.store.partition_lock(bucket, partition)
        self.store.exclusively(pk, sk, lambda lease: self._merge_pending(rules, partition, lease), deadline=deadline)

    def _merge_pending(self, rules: BucketRules, partition: str, lease: Lease) -> dict | None:
        markers = self.store.pending(rules.name, partition)
        if not markers:
            return None
        key = rules.index_key(partition)
        current = self._read(rules.name, key)
        if partition == REJECTS_PARTITION:
            existing = {r[0]: (r[0], r[1], str(r[2])) for r in csv_to_rejects(current)} if current else {}
        else:
            existing = {r.datakey.split("/", 3)[3]: tuple(r[:3]) + (str(r.filesize),)
                        for r in csv_to_rows(current)} if current else {}
        keys = {m["key"] for m in markers}
        merged = merge(existing, self.store.current(rules.name, partition, keys), keys)
        lease.check(self.store.margin)
        summary = self.write_partition(rules, partition, merged.values())
        self.store.clear(rules.name, partition, markers)
        return summary

    def write_partition(self, rules: BucketRules, partition: str, cells: Iterable[tuple]) -> dict:
        """Write (or, when empty, delete) a partition's CSV; return its summary."""
        key = rules.index_key(partition)
        cells = list(cells)
        if partition == REJECTS_PARTITION:
            body = rejects_to_csv((c[0], c[1], int(c[2])) for c in cells)
            summary = {"count": len(cells), "start": "", "stop": ""}
        else:
            rows = [Row(c[0], c[1], c[2], int(c[3])) for c in cells]
            body = rows_to_csv(rows)
            summary = summarize(rows)
        if cells:
            self.s3.put_object(Bucket=rules.name, Key=key, Body=body, ContentType="text/csv")
        else:
            self.s3.delete_object(Bucket=rules.name, Key=key)
        return {**summary, "modified": _utc_now()}

    def _read(self, bucket: str, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    # ------------------------------------------------------------------ catalog
    def publish_catalog(self, bucket: str, *, deadline: float | None = None) -> None:
        rules = self.buckets[bucket]
        pk, sk = self.store.catalog_lock(bucket)

        def write(lease: Lease) -> None:
            summaries = {p: s for p, s in self.store.summaries(bucket).items() if p != REJECTS_PARTITION}
            document = catalog_from_summaries(rules, summaries)
            lease.check(self.store.margin)
            self.s3.put_object(Bucket=bucket, Key=CATALOG_KEY, Body=to_json(document),
                               ContentType="application/json")

        self.store.exclusively(pk, sk, write, deadline=deadline)

    def replace_partition(self, bucket: str, partition: str, cells: Iterable[tuple]) -> None:
        """Replace a partition's CSV with ``cells`` (a rebuild from a listing) as lease holder.
        Changes that arrive meanwhile are merged on top before the lease is given back, exactly
        as a batch holding the lease would."""
        rules = self.buckets[bucket]
        pk, sk = self.store.partition_lock(bucket, partition)
        self.store.bump(pk, sk)
        lease = self.store.acquire(pk, sk)
        while lease is None:  # a batch is merging: wait for it rather than race it
            time.sleep(0.2)
            lease = self.store.acquire(pk, sk)
        lease.check(self.store.margin)
        summary = self.write_partition(rules, partition, cells)
        while not self.store.release(lease, summary):
            lease = self.store.renew(lease, summary)
            if lease is None:
                return
            summary = self._merge_pending(rules, partition, lease) or summary
