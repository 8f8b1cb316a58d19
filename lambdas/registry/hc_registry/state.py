"""Per-object state and per-partition leases in one DynamoDB table (pk, sk strings).

Items (``P`` = partition id ``<dataset>#<year>`` or ``_rejects``):

- ``<bucket>#P`` / key: the latest event applied for the key (``order``, ``deleted``, ``cells``).
  Written only if the stored order is not newer, so an out-of-order event is a no-op and a
  delete stays as a tombstone (expiring long after SQS could redeliver an older PUT).
- ``<bucket>#pending#P`` / key + order (or the key's SHA-256 + order, for keys that leave no room
  under DynamoDB's 1,024-byte sort key): "this key changed", written after the state item. The
  lease holder sets each flagged key's row to the key's *stored state* (not to what the event
  said), so a late or duplicate marker can only ever re-apply the truth. Markers are immutable,
  so the holder deletes exactly the ones it merged and a newer one survives for the next round.
- ``<bucket>#partitions`` / P: P's lease (``owner``, ``lease_until``), its change counter
  ``version`` and the summary of its CSV (``row_count``, ``first_start``, ``last_stop``, ``modified_at``).
- ``<bucket>#catalog`` / ``catalog``: the lease and version of the bucket's catalog.json.

Lease protocol (one writer per CSV, nothing lost): a batch bumps ``version`` of every partition it
touched, then tries to take the lease. The holder merges, and releases only if ``version`` is
still what it read when it took or renewed the lease; otherwise it renews and merges again. A
batch that finds the lease taken simply leaves: its bump forces the holder to go round once more.
"""
from __future__ import annotations

import hashlib
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, NamedTuple

from botocore.exceptions import ClientError

TOMBSTONE_DAYS = 30  # longer than SQS can hold a message (14 days): no older PUT arrives later
SEQUENCER_WIDTH = 32
MAX_SORT_KEY_BYTES = 1024  # DynamoDB's limit on a sort key


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


def marker_sort_key(key: str, order: str) -> str:
    """``key + order``, unique per event of a key. S3 keys and DynamoDB sort keys both reach
    1,024 bytes, so a key too long to carry its order is replaced by its SHA-256 (the marker's
    ``key`` attribute keeps the key itself; nothing reads it back from the sort key)."""
    marker = f"{key}\n{order}"
    if len(marker.encode()) <= MAX_SORT_KEY_BYTES:
        return marker
    return f"sha256:{hashlib.sha256(key.encode()).hexdigest()}\n{order}"


def _s(value: str) -> dict:
    return {"S": value}


def _n(value: float | int) -> dict:
    return {"N": repr(value) if isinstance(value, float) else str(value)}


def _conditional_failed(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def _if_condition_holds(write, **request) -> dict | None:
    """Run a conditional DynamoDB write; its response, or None when the condition did not hold."""
    try:
        return write(**request)
    except ClientError as error:
        if _conditional_failed(error):
            return None
        raise


class StateStore:
    def __init__(self, dynamodb, table: str, *, lease_seconds: float = 180.0, margin: float = 15.0):
        self.ddb = dynamodb
        self.table = table
        self.lease_seconds = lease_seconds
        self.margin = margin

    # ------------------------------------------------------------------ object state
    def apply(self, changes: Iterable[Change], *, workers: int = 8) -> list[Change]:
        """Record each change that is not older than the stored one, then flag its key dirty with
        a pending marker. Returns the recorded changes; older ones are no-ops. The state write
        comes first, so a marker always points at state that exists; a redelivered duplicate
        (equal order) rewrites the same state and flags the key again, which merges to the same row."""
        changes = list(changes)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(changes)))) as pool:
            recorded = [c for c, ok in zip(changes, pool.map(self._record, changes)) if ok]
        self._batch_write([{"PutRequest": {"Item": self._marker(c)}} for c in recorded])
        return recorded

    def _record(self, change: Change) -> bool:
        item = {
            "pk": _s(f"{change.bucket}#{change.partition}"),
            "sk": _s(change.key),
            "order": _s(change.order),
            "deleted": {"BOOL": change.deleted},
            "cells": {"L": [_s(str(c)) for c in change.cells]},
        }
        if change.deleted:
            item["expires_at"] = _n(int(time.time()) + TOMBSTONE_DAYS * 86400)
        return _if_condition_holds(self.ddb.put_item, TableName=self.table, Item=item,
                                   ConditionExpression="attribute_not_exists(#o) OR #o <= :o",
                                   ExpressionAttributeNames={"#o": "order"},
                                   ExpressionAttributeValues={":o": _s(change.order)}) is not None

    def _marker(self, change: Change) -> dict:
        return {"pk": _s(self.pending_pk(change.bucket, change.partition)),
                "sk": _s(marker_sort_key(change.key, change.order)), "key": _s(change.key)}

    def current(self, bucket: str, partition: str, keys: Iterable[str]) -> dict[str, dict]:
        """The stored state of ``keys`` (consistent reads): {key: {deleted, cells}}."""
        pk = f"{bucket}#{partition}"
        keys = sorted(set(keys))
        out: dict[str, dict] = {}
        for start in range(0, len(keys), 100):
            request = {self.table: {"Keys": [{"pk": _s(pk), "sk": _s(k)} for k in keys[start:start + 100]],
                                    "ConsistentRead": True}}
            for attempt in range(10):
                response = self.ddb.batch_get_item(RequestItems=request)
                for item in response["Responses"].get(self.table, []):
                    out[item["sk"]["S"]] = {"deleted": item["deleted"]["BOOL"],
                                            "cells": [c["S"] for c in item["cells"]["L"]]}
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
            else:
                raise RuntimeError("could not read object state")
        return out

    def _batch_write(self, requests: list[dict]) -> None:
        for start in range(0, len(requests), 25):
            pending = {self.table: requests[start:start + 25]}
            for attempt in range(10):
                pending = self.ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2 ** attempt))
            else:
                raise RuntimeError("batch write kept coming back unprocessed")

    @staticmethod
    def pending_pk(bucket: str, partition: str) -> str:
        return f"{bucket}#pending#{partition}"

    def pending(self, bucket: str, partition: str) -> list[dict]:
        """The partition's dirty-key markers [{sk, key}] (consistent read)."""
        return [{"sk": i["sk"]["S"], "key": i["key"]["S"]} for i in self._query(self.pending_pk(bucket, partition))]

    def clear(self, bucket: str, partition: str, markers: list[dict]) -> None:
        """Delete exactly the markers merged (markers are immutable: a newer one survives)."""
        pk = self.pending_pk(bucket, partition)
        self._batch_write([{"DeleteRequest": {"Key": {"pk": _s(pk), "sk": _s(m["sk"])}}} for m in markers])

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
        taken = _if_condition_holds(
            self.ddb.update_item,
            TableName=self.table, Key={"pk": _s(pk), "sk": _s(sk)},
            UpdateExpression="SET #owner = :me, lease_until = :until",
            ConditionExpression="attribute_not_exists(#owner) OR lease_until < :now",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": _s(owner), ":until": _n(until), ":now": _n(now)},
            ReturnValues="ALL_NEW",
        )
        if taken is None:
            return None
        return Lease(pk, sk, owner, int(taken["Attributes"].get("version", {"N": "0"})["N"]), until)

    def release(self, lease: Lease, summary: dict | None) -> bool:
        """Give the lease up if nothing changed since it was taken (then True); else False."""
        sets, values = self._summary_update(summary)
        update = ("SET " + ", ".join(sets) + " " if sets else "") + "REMOVE #owner, lease_until"
        return _if_condition_holds(
            self.ddb.update_item,
            TableName=self.table, Key={"pk": _s(lease.pk), "sk": _s(lease.sk)},
            UpdateExpression=update,
            ConditionExpression="#owner = :me AND #v = :v",
            ExpressionAttributeNames={"#owner": "owner", "#v": "version"},
            ExpressionAttributeValues={**values, ":me": _s(lease.owner), ":v": _n(lease.version)},
        ) is not None

    def renew(self, lease: Lease, summary: dict | None) -> Lease | None:
        """Keep the lease for another round (recording the summary); None if it was lost."""
        sets, values = self._summary_update(summary)
        until = time.time() + self.lease_seconds
        renewed = _if_condition_holds(
            self.ddb.update_item,
            TableName=self.table, Key={"pk": _s(lease.pk), "sk": _s(lease.sk)},
            UpdateExpression="SET " + ", ".join(sets + ["lease_until = :until"]),
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={**values, ":me": _s(lease.owner), ":until": _n(until)},
            ReturnValues="ALL_NEW",
        )
        if renewed is None:
            return None
        version = int(renewed["Attributes"].get("version", {"N": "0"})["N"])
        return Lease(lease.pk, lease.sk, lease.owner, version, until)

    @staticmethod
    def _summary_update(summary: dict | None) -> tuple[list[str], dict]:
        if summary is None:
            return [], {}
        sets = ["row_count = :count", "first_start = :start", "last_stop = :stop", "modified_at = :modified"]
        values = {":count": _n(summary["count"]), ":start": _s(summary["start"]), ":stop": _s(summary["stop"]),
                  ":modified": _s(summary["modified"])}
        return sets, values

    def abandon(self, lease: Lease, summary: dict | None) -> None:
        """Give the lease up although changes arrived meanwhile (out of time): they stay pending
        for the next holder, which the caller's retried batch will be."""
        sets, values = self._summary_update(summary)
        _if_condition_holds(  # a lease already lost needs no giving up
            self.ddb.update_item,
            TableName=self.table, Key={"pk": _s(lease.pk), "sk": _s(lease.sk)},
            UpdateExpression=("SET " + ", ".join(sets) + " " if sets else "") + "REMOVE #owner, lease_until",
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={**values, ":me": _s(lease.owner)},
        )

    def exclusively(self, pk: str, sk: str, work, *, deadline: float | None = None) -> bool:
        """Bump, then if the lease is free run ``work(lease) -> summary|None`` until no change
        arrived meanwhile. Returns True if this call held the lease. Past ``deadline`` (epoch
        seconds) with changes still arriving, the lease is handed back and LeaseLost raised, so
        the caller fails its batch and the retry carries on, instead of a timed-out holder
        blocking the partition until its lease expires."""
        self.bump(pk, sk)
        lease = self.acquire(pk, sk)
        if lease is None:
            return False
        while True:
            summary = work(lease)
            if self.release(lease, summary):
                return True
            if deadline is not None and time.time() > deadline:
                self.abandon(lease, summary)
                raise LeaseLost(f"out of time on {pk}/{sk} with changes still arriving")
            lease = self.renew(lease, summary)
            if lease is None:
                return True
