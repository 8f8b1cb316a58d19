"""Per-object state and per-partition leases in one DynamoDB table (pk, sk strings).

Items (``P`` = partition id ``<dataset>#<year>`` or ``_rejects``):

- ``<bucket>#P`` / key: the latest event applied for the key (``order``, ``deleted``, ``cells``).
  Written only if the stored order is older, so a duplicate or an out-of-order event is a no-op
  and a delete stays as a tombstone (expiring long after SQS could redeliver an older PUT).
- ``<bucket>#pending#P`` / key + order: a change not yet merged into P's CSV, written in the same
  transaction as the state item. Markers are immutable, so the lease holder may delete exactly
  the ones it merged without losing a newer change that arrived meanwhile.
- ``<bucket>#partitions`` / P: P's lease (``owner``, ``lease_until``), its change counter
  ``version`` and the summary of its CSV (``row_count``, ``first_start``, ``last_stop``, ``modified_at``).
- ``<bucket>#catalog`` / ``catalog``: the lease and version of the bucket's catalog.json.

Lease protocol (one writer per CSV, nothing lost): a batch bumps ``version`` of every partition it
touched, then tries to take the lease. The holder merges, and releases only if ``version`` is
still what it read when it took or renewed the lease; otherwise it renews and merges again. A
batch that finds the lease taken simply leaves: its bump forces the holder to go round once more.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from botocore.exceptions import ClientError

TOMBSTONE_DAYS = 30  # longer than SQS can hold a message (14 days): no older PUT arrives later
TRANSACT_CHANGES = 50  # 2 actions per change; TransactWriteItems takes at most 100
SEQUENCER_WIDTH = 32


def order_token(sequencer: str | None, event_time: str) -> str:
    """Comparable order of the events of one key. S3 says: right-pad the shorter sequencer with
    zeros, then compare lexicographically. The event time only breaks ties between events that
    carry no sequencer (moto does not send one); for real S3 events the sequencer decides."""
    seq = (sequencer or "").upper().ljust(SEQUENCER_WIDTH, "0")
    return f"{seq}|{event_time}"


class Change(NamedTuple):
    bucket: str
    partition: str
    key: str
    order: str
    deleted: bool
    cells: tuple


class LeaseLost(Exception):
    """The lease ran out before the holder could write; someone else carries on."""


@dataclass
class Lease:
    pk: str
    sk: str
    owner: str
    version: int
    until: float

    def check(self, margin: float) -> None:
        if time.time() > self.until - margin:
            raise LeaseLost(f"lease on {self.pk}/{self.sk} is about to expire")


def _s(value: str) -> dict:
    return {"S": value}


def _n(value: float | int) -> dict:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _conditional_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class StateStore:
    def __init__(self, dynamodb, table: str, *, lease_seconds: float = 180.0, margin: float = 15.0):
        self.ddb = dynamodb
        self.table = table
        self.lease_seconds = lease_seconds
        self.margin = margin

    # ------------------------------------------------------------------ object state
    def apply(self, changes: Iterable[Change]) -> list[Change]:
        """Record each change whose order is newer than the stored one, with its pending marker.
        Returns the changes that were newer (stale ones are dropped silently: they are no-ops)."""
        changes = list(changes)
        applied: list[Change] = []
        for start in range(0, len(changes), TRANSACT_CHANGES):
            applied += self._apply_chunk(changes[start:start + TRANSACT_CHANGES])
        return applied

    def _apply_chunk(self, chunk: list[Change]) -> list[Change]:
        for attempt in range(8):
            if not chunk:
                return []
            try:
                self.ddb.transact_write_items(TransactItems=[a for c in chunk for a in self._actions(c)])
                return chunk
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                    raise
                reasons = error.response.get("CancellationReasons") or []
                # Reasons align with actions: 2 per change, the state put first.
                stale = {i // 2 for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"}
                chunk = [c for i, c in enumerate(chunk) if i not in stale]
                if not stale:  # a conflict with a concurrent transaction: back off and retry
                    time.sleep(min(2.0, 0.05 * 2 ** attempt))
        raise RuntimeError("state transaction kept conflicting")

    def _actions(self, change: Change) -> list[dict]:
        state = {
            "pk": _s(f"{change.bucket}#{change.partition}"),
            "sk": _s(change.key),
            "order": _s(change.order),
            "deleted": {"BOOL": change.deleted},
            "cells": {"L": [_s(str(c)) for c in change.cells]},
        }
        if change.deleted:
            state["expires_at"] = _n(int(time.time()) + TOMBSTONE_DAYS * 86400)
        marker = {**state, "pk": _s(self.pending_pk(change.bucket, change.partition)),
                  "sk": _s(f"{change.key}\n{change.order}"), "key": _s(change.key)}
        marker.pop("expires_at", None)
        return [
            {"Put": {"TableName": self.table, "Item": state,
                     "ConditionExpression": "attribute_not_exists(#o) OR #o < :o",
                     "ExpressionAttributeNames": {"#o": "order"},
                     "ExpressionAttributeValues": {":o": _s(change.order)}}},
            {"Put": {"TableName": self.table, "Item": marker}},
        ]

    @staticmethod
    def pending_pk(bucket: str, partition: str) -> str:
        return f"{bucket}#pending#{partition}"

    def pending(self, bucket: str, partition: str) -> list[dict]:
        """Unmerged changes of a partition: [{key, order, deleted, cells, sk}] (consistent read)."""
        out = []
        for item in self._query(self.pending_pk(bucket, partition)):
            out.append({"sk": item["sk"]["S"], "key": item["key"]["S"], "order": item["order"]["S"],
                        "deleted": item["deleted"]["BOOL"], "cells": [c["S"] for c in item["cells"]["L"]]})
        return out

    def clear(self, bucket: str, partition: str, markers: list[dict]) -> None:
        pk = self.pending_pk(bucket, partition)
        requests = [{"DeleteRequest": {"Key": {"pk": _s(pk), "sk": _s(m["sk"])}}} for m in markers]
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start:start + 25]}
            for attempt in range(10):
                unprocessed = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not unprocessed:
                    break
                pending = unprocessed
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
            else:
                raise RuntimeError("could not clear merged markers")

    def _query(self, pk: str):
        paginator = self.ddb.get_paginator("query")
        for page in paginator.paginate(TableName=self.table, KeyConditionExpression="pk = :pk",
                                       ExpressionAttributeValues={":pk": _s(pk)}, ConsistentRead=True):
            yield from page["Items"]

    # ------------------------------------------------------------------ summaries
    def summaries(self, bucket: str) -> dict[str, dict]:
        """{partition id: {count, start, stop, modified}} of every partition of the bucket."""
        out = {}
        for item in self._query(f"{bucket}#partitions"):
            if "row_count" in item:
                out[item["sk"]["S"]] = {"count": int(item["row_count"]["N"]), "start": item["first_start"]["S"],
                                        "stop": item["last_stop"]["S"], "modified": item["modified_at"]["S"]}
        return out

    # ------------------------------------------------------------------ leases
    @staticmethod
    def partition_lock(bucket: str, partition: str) -> tuple[str, str]:
        return f"{bucket}#partitions", partition

    @staticmethod
    def catalog_lock(bucket: str) -> tuple[str, str]:
        return f"{bucket}#catalog", "catalog"

    def bump(self, pk: str, sk: str) -> None:
        self.ddb.update_item(TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)},
                             UpdateExpression="ADD #v :one", ExpressionAttributeNames={"#v": "version"},
                             ExpressionAttributeValues={":one": _n(1)})

    def acquire(self, pk: str, sk: str) -> Lease | None:
        owner, now = uuid.uuid4().hex, time.time()
        until = now + self.lease_seconds
        try:
            item = self.ddb.update_item(
                TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)},
                UpdateExpression="SET #owner = :me, lease_until = :until",
                ConditionExpression="attribute_not_exists(#owner) OR lease_until < :now",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={":me": _s(owner), ":until": _n(until), ":now": _n(now)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return Lease(pk, sk, owner, int(item.get("version", {"N": "0"})["N"]), until)

    def release(self, lease: Lease, summary: dict | None) -> bool:
        """Give the lease up if nothing changed since it was taken (then True); else False."""
        sets, values = self._summary_update(summary)
        update = ("SET " + ", ".join(sets) + " " if sets else "") + "REMOVE #owner, lease_until"
        try:
            self.ddb.update_item(
                TableName=self.table, Key={"pk": _s(lease.pk), "sk": _s(lease.sk)},
                UpdateExpression=update,
                ConditionExpression="#owner = :me AND #v = :v",
                ExpressionAttributeNames={"#owner": "owner", "#v": "version"},
                ExpressionAttributeValues={**values, ":me": _s(lease.owner), ":v": _n(lease.version)},
            )
            return True
        except ClientError as error:
            if _conditional_failed(error):
                return False
            raise

    def renew(self, lease: Lease, summary: dict | None) -> Lease | None:
        """Keep the lease for another round (recording the summary); None if it was lost."""
        sets, values = self._summary_update(summary)
        until = time.time() + self.lease_seconds
        try:
            item = self.ddb.update_item(
                TableName=self.table, Key={"pk": _s(lease.pk), "sk": _s(lease.sk)},
                UpdateExpression="SET " + ", ".join(sets + ["lease_until = :until"]),
                ConditionExpression="#owner = :me",
                ExpressionAttributeNames={"#owner": "owner"},
                ExpressionAttributeValues={**values, ":me": _s(lease.owner), ":until": _n(until)},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if _conditional_failed(error):
                return None
            raise
        return Lease(lease.pk, lease.sk, lease.owner, int(item.get("version", {"N": "0"})["N"]), until)

    @staticmethod
    def _summary_update(summary: dict | None) -> tuple[list[str], dict]:
        if summary is None:
            return [], {}
        sets = ["row_count = :count", "first_start = :start", "last_stop = :stop", "modified_at = :modified"]
        values = {":count": _n(summary["count"]), ":start": _s(summary["start"]), ":stop": _s(summary["stop"]),
                  ":modified": _s(summary["modified"])}
        return sets, values

    def exclusively(self, pk: str, sk: str, work) -> bool:
        """Bump, then if the lease is free run ``work(lease) -> summary|None`` until no change
        arrived meanwhile. Returns True if this call held the lease."""
        self.bump(pk, sk)
        lease = self.acquire(pk, sk)
        if lease is None:
            return False
        while True:
            summary = work(lease)
            if self.release(lease, summary):
                return True
            lease = self.renew(lease, summary)
            if lease is None:
                return True
