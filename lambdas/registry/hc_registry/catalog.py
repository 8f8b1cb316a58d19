"""CloudCatalog documents: rows → CSV, partition summaries → catalog entries → catalog.json, and
the federation (HelioDataRegistry.json) document. Pure functions (stdlib csv/json).

The format follows what the ``cloudcatalog`` client reads: header exactly
``start,stop,datakey,filesize``, no comment line, no quoting unless a key needs it, rows sorted by
start; ``version`` "1.0" and ``status`` as an object in catalog.json.
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from typing import Iterable

from hc_registry.rules import BucketRules, Row

INDEX_HEADER = ["start", "stop", "datakey", "filesize"]
REJECTS_HEADER = ["key", "reason", "filesize"]
CATALOG_VERSION = "1.0"
STATUS_OK = {"code": 1200, "message": "OK"}


def now_utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sort_rows(rows: Iterable[Row]) -> list[Row]:
    """Rows in index order: by start, then datakey (a stable, total order)."""
    return sorted(rows, key=lambda r: (r.start, r.datakey))


def rows_to_csv(rows: Iterable[Row]) -> bytes:
    return _table_to_csv(INDEX_HEADER, ([r.start, r.stop, r.datakey, str(r.filesize)] for r in sort_rows(rows)))


def csv_to_rows(data: bytes | str) -> list[Row]:
    return [Row(c[0], c[1], c[2], int(c[3])) for c in _csv_to_table(data, INDEX_HEADER)]


def rejects_to_csv(rejects: Iterable[tuple[str, str, int]]) -> bytes:
    return _table_to_csv(REJECTS_HEADER, ([k, reason, str(size)] for k, reason, size in sorted(rejects)))


def csv_to_rejects(data: bytes | str) -> list[tuple[str, str, int]]:
    return [(c[0], c[1], int(c[2])) for c in _csv_to_table(data, REJECTS_HEADER)]


def _table_to_csv(header: list[str], cells: Iterable[list[str]]) -> bytes:
    out = io.StringIO()
    # QUOTE_MINIMAL quotes only a cell holding a comma, quote or newline (standard CSV escaping).
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(cells)
    return out.getvalue().encode()


def _csv_to_table(data: bytes | str, header: list[str]) -> list[list[str]]:
    text = data.decode() if isinstance(data, bytes) else data
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None:
        return []
    if first[: len(header)] != header:
        raise ValueError(f"index header is {first!r}, expected {header!r}")
    return [row for row in reader if row]


def summarize(rows: Iterable[Row]) -> dict:
    """What the catalog needs of one partition: row count, earliest start, latest stop."""
    count, start, stop = 0, None, None
    for row in rows:
        count += 1
        start = row.start if start is None or row.start < start else start
        stop = row.stop if stop is None or row.stop > stop else stop
    return {"count": count, "start": start or "", "stop": stop or ""}


def catalog_entry(rules: BucketRules, dataset_id: str, partitions: Iterable[dict]) -> dict | None:
    """A dataset's catalog.json entry from its partition summaries (``count``, ``start``,
    ``stop``, ``modified``), or None when no row is left (the dataset leaves the catalog)."""
    live = [p for p in partitions if p.get("count", 0) > 0]
    if not live:
        return None
    dataset = rules.dataset(dataset_id)
    entry = {
        "id": dataset.id,
        "index": rules.index_url,
        "title": dataset.title,
        "start": min(p["start"] for p in live),
        "stop": max(p["stop"] for p in live),
        "modification": max(p.get("modified") or now_utc() for p in live),
        "indextype": "csv",
        "filetype": dataset.filetype,
    }
    entry.update(dataset.optional)
    return entry


def catalog_document(rules: BucketRules, entries: Iterable[dict]) -> dict:
    doc = {
        "version": CATALOG_VERSION,
        "endpoint": f"s3://{rules.name}/",
        "name": rules.title or rules.name,
        "region": rules.region,
        "egress": "user-pays" if rules.requester_pays else "none",
        "contact": rules.contact,
        "status": dict(STATUS_OK),
        "catalog": sorted(entries, key=lambda e: e["id"]),
    }
    if rules.description:
        doc["description"] = rules.description
    return doc


def catalog_from_summaries(rules: BucketRules, summaries: dict[str, dict]) -> dict:
    """catalog.json from {partition id: summary} of one bucket (datasets no longer configured
    are left out)."""
    by_dataset: dict[str, list[dict]] = {}
    for partition, summary in summaries.items():
        dataset = partition.rsplit("#", 1)[0]
        by_dataset.setdefault(dataset, []).append(summary)
    known = {d.id for d in rules.datasets}
    entries = [catalog_entry(rules, d, parts) for d, parts in by_dataset.items() if d in known]
    return catalog_document(rules, [e for e in entries if e])


def to_json(document: dict) -> bytes:
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def federation_document(buckets: Iterable[BucketRules], *, modified: str | None = None,
                        public_only: bool = True) -> dict:
    """HelioDataRegistry.json: the endpoints other HelioClouds' clients discover (public buckets).
    ``public_only=False`` lists every bucket, for a registry only the instance's own users read
    (the sandbox's)."""
    return {
        "version": CATALOG_VERSION,
        "modificationDate": modified or now_utc(),
        "registry": [
            {"endpoint": f"s3://{b.name}/", "name": b.title or b.name, "provider": "aws", "region": b.region}
            for b in buckets if b.public or not public_only
        ],
    }
