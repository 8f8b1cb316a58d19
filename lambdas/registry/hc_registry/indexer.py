"""The indexer: one SQS batch of S3 events → exact CloudCatalog index files.

Steps per batch: parse each message (a bad one is reported as a batch item failure, so SQS retries
it and finally moves it to the dead-letter queue); keep the newest event per key; record the
changes in DynamoDB (newer-than-stored only, see ``state``); merge each touched partition's
pending changes into its CSV under the partition lease; then rewrite catalog.json once under the
bucket's catalog lease. S3 writes per batch are one per touched partition plus one catalog, never
one per object.
"""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Iterable
from urllib.parse import unquote_plus

from botocore.exceptions import ClientError

from hc_registry.catalog import (catalog_from_summaries, csv_to_rejects, csv_to_rows, rejects_to_csv, rows_to_csv,
                                 summarize, to_json)
from hc_registry.rules import CATALOG_KEY, REJECTS_PARTITION, BucketRules, Parsed, Reject, Row
from hc_registry.state import Change, Lease, StateStore, order_token

log = logging.getLogger("hc_registry")


class BadMessage(ValueError):
    """A message that is not an S3 event this indexer can use."""


def parse_message(body: str, buckets: dict[str, BucketRules]) -> list[dict]:
    """An SQS body → its S3 object events [{bucket, key, size, deleted, order}] ([] for the
    s3:TestEvent that S3 sends when notifications are configured)."""
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
        if not name.startswith(("ObjectCreated:", "ObjectRemoved:")):
            continue
        events.append({"bucket": bucket, "key": key, "size": size, "order": order,
                       "deleted": name.startswith("ObjectRemoved:")})
    return events


def to_change(rules: BucketRules, event: dict) -> Change | None:
    """An S3 event → the change it makes to one partition (None for the index's own objects)."""
    classified = rules.classify(event["key"], event["size"])
    if classified is None:
        return None
    if isinstance(classified, Parsed):
        row = classified.row
        return Change(rules.name, classified.partition, event["key"], event["order"], event["deleted"],
                      (row.start, row.stop, row.datakey, str(row.filesize)))
    assert isinstance(classified, Reject)
    return Change(rules.name, REJECTS_PARTITION, event["key"], event["order"], event["deleted"],
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
        """Step 1: parse the messages and record their changes (durably, with dirty markers).
        Returns the ids of messages that failed, and {(bucket, partition): message ids} touched."""
        failed: set[str] = set()
        touching: dict[tuple[str, str], set[str]] = {}
        newest: dict[tuple[str, str], Change] = {}
        for message in messages:
            message_id = message.get("messageId", "")
            try:
                events = parse_message(message.get("body"), self.buckets)
            except BadMessage as exc:
                log.warning("message %s reported as failed: %s", message_id, exc)
                failed.add(message_id)
                continue
            for item in events:
                change = to_change(self.buckets[item["bucket"]], item)
                if change is None:
                    continue
                touching.setdefault((change.bucket, change.partition), set()).add(message_id)
                held = newest.get((change.bucket, change.key))
                if held is None or change.order > held.order:
                    newest[(change.bucket, change.key)] = change
        try:
            self.store.apply(newest.values())
        except Exception:  # noqa: BLE001 - every message with a change is retried as a whole
            log.exception("recording %d changes failed", len(newest))
            failed |= {m for ids in touching.values() for m in ids}
            return failed, {}
        rejects = sum(1 for c in newest.values() if c.partition == REJECTS_PARTITION)
        log.info("recorded %d changes (%d rejects) from %d messages (%d failed)",
                 len(newest), rejects, len(messages), len(failed))
        return failed, touching

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
