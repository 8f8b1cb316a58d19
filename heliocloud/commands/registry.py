"""`heliocloud registry rebuild|verify BUCKET` and `heliocloud registry federation`.

rebuild: list the bucket, turn every key into its row with the indexer's own rules, and replace
each partition's CSV (under the same leases the indexer uses, so a running indexer is never
raced), then rewrite catalog.json. verify: the same listing compared with what the index says;
exit 1 with a summary of the drift. Both honour AWS_ENDPOINT_URL (e.g. the sandbox's moto).
"""
from __future__ import annotations

import json
import queue
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator

from botocore.exceptions import ClientError
from hc_registry.catalog import catalog_from_summaries, csv_to_rejects, csv_to_rows, federation_document, summarize
from hc_registry.indexer import Indexer
from hc_registry.rules import CATALOG_KEY, REJECTS_PARTITION, BucketRules, Parsed, Reject, Row
from hc_registry.state import StateStore
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from heliocloud import aws
from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit
from heliocloud.registry_config import bucket_rules, state_table_name

LIST_WORKERS = 8


def register(sub) -> None:
    p = sub.add_parser("registry", help="rebuild or verify a bucket's CloudCatalog index; federation entry")
    add_config_option(p)
    p.add_argument("--region", help="AWS region (default: instance.region or the AWS default)")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, text in (("rebuild", "rewrite the index of BUCKET from a full listing"),
                       ("verify", "compare the index of BUCKET with a listing; exit 1 on drift")):
        action = actions.add_parser(name, help=text)
        action.add_argument("bucket", metavar="BUCKET")
        action.add_argument("--table", help="indexer state table (default <instance>-registry-state)")
        action.add_argument("--workers", type=int, default=LIST_WORKERS, help="parallel listings and writes")
    actions.add_parser("federation", help="print the HelioDataRegistry.json document for the public buckets")
    p.set_defaults(func=run)


# ---------------------------------------------------------------------- listing
def list_objects(s3, bucket: str, *, workers: int = LIST_WORKERS, progress=None) -> Iterator[tuple[str, int]]:
    """(key, size) of every object. The top-level folders are listed in parallel threads (S3
    serves each prefix independently); pages are handed over as they arrive."""
    pages: queue.Queue = queue.Queue(maxsize=workers * 4)
    done = object()
    folders: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Delimiter="/"):
        contents = page.get("Contents", [])
        yield from ((o["Key"], o["Size"]) for o in contents)
        folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        if progress:
            progress(len(contents))

    def list_folder(prefix: str) -> None:
        try:
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                pages.put([(o["Key"], o["Size"]) for o in page.get("Contents", [])])
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            pages.put(exc)
        finally:
            pages.put(done)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for folder in folders:
            pool.submit(list_folder, folder)
        remaining = len(folders)
        while remaining:
            item = pages.get()
            if item is done:
                remaining -= 1
            elif isinstance(item, Exception):
                raise item
            else:
                yield from item
                if progress:
                    progress(len(item))


@dataclass
class Listing:
    """A bucket's objects as the index should show them."""

    partitions: dict[str, dict[str, tuple]] = field(default_factory=lambda: defaultdict(dict))
    rejects: dict[str, tuple] = field(default_factory=dict)
    index_objects: set[str] = field(default_factory=set)
    objects: int = 0


def classify_listing(rules: BucketRules, objects) -> Listing:
    listing = Listing()
    for key, size in objects:
        listing.objects += 1
        result = rules.classify(key, size)
        if result is None:
            listing.index_objects.add(key)
        elif isinstance(result, Parsed):
            row = result.row
            listing.partitions[result.partition][key] = (row.start, row.stop, row.datakey, str(row.filesize))
        else:
            assert isinstance(result, Reject)
            listing.rejects[key] = (result.key, result.reason, str(result.filesize))
    return listing


def _listing_with_progress(s3, rules: BucketRules, workers: int, console: Console) -> Listing:
    with _progress(console) as progress:
        task = progress.add_task(f"listing s3://{rules.name}", total=None)
        objects = list_objects(s3, rules.name, workers=workers,
                               progress=lambda n: progress.advance(task, n))
        return classify_listing(rules, objects)


def _progress(console: Console) -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


def _index_partition(rules: BucketRules, key: str) -> str | None:
    """Partition id of an index object key (None for catalog.json)."""
    if key == CATALOG_KEY:
        return None
    name = key[len(rules.index_prefix):]
    if name == "rejects.csv":
        return REJECTS_PARTITION
    stem, year = name[:-4].rsplit("_", 1)
    return f"{stem}#{year}"


# ---------------------------------------------------------------------- rebuild
def rebuild(s3, store: StateStore, rules: BucketRules, *, workers: int = LIST_WORKERS,
            console: Console | None = None) -> Listing:
    """Replace every partition's CSV and the catalog with what a full listing says."""
    console = console or Console(stderr=True)
    listing = _listing_with_progress(s3, rules, workers, console)
    indexer = Indexer({rules.name: rules}, s3=s3, store=store)
    targets: dict[str, list[tuple]] = {p: list(rows.values()) for p, rows in listing.partitions.items()}
    targets[REJECTS_PARTITION] = list(listing.rejects.values())
    # Partitions the index still shows but the listing no longer has: empty them.
    stale = {p for p, s in store.summaries(rules.name).items() if s["count"] > 0}
    stale |= {p for p in map(lambda k: _index_partition(rules, k), listing.index_objects) if p}
    for partition in stale - set(targets):
        targets[partition] = []
    with _progress(console) as progress:
        task = progress.add_task("writing index files", total=len(targets))
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(indexer.replace_partition, rules.name, p, rows) for p, rows in targets.items()]
            for future in futures:
                future.result()
                progress.advance(task)
        indexer.publish_catalog(rules.name)
    return listing


# ---------------------------------------------------------------------- verify
@dataclass
class Drift:
    problems: list[tuple[str, str]] = field(default_factory=list)  # (where, what)

    def add(self, where: str, what: str) -> None:
        self.problems.append((where, what))

    def __bool__(self) -> bool:
        return bool(self.problems)


def _read(s3, bucket: str, key: str) -> bytes | None:
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def compare_rows(where: str, expected: dict[str, tuple], actual: dict[str, tuple], drift: Drift) -> None:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    for label, keys in (("missing", missing), ("extra", extra), ("different", changed)):
        if keys:
            sample = ", ".join(keys[:3]) + (" ..." if len(keys) > 3 else "")
            drift.add(where, f"{len(keys)} {label} row(s): {sample}")


def verify(s3, rules: BucketRules, *, workers: int = LIST_WORKERS, console: Console | None = None) -> Drift:
    console = console or Console(stderr=True)
    listing = _listing_with_progress(s3, rules, workers, console)
    drift = Drift()
    present = {p for p in map(lambda k: _index_partition(rules, k), listing.index_objects) if p}
    summaries: dict[str, dict] = {}
    for partition in sorted((set(listing.partitions) | present) - {REJECTS_PARTITION}):
        key = rules.index_key(partition)
        expected = listing.partitions.get(partition, {})
        data = _read(s3, rules.name, key)
        if data is None:
            drift.add(key, f"missing index file ({len(expected)} rows expected)")
            continue
        try:
            rows = csv_to_rows(data)
        except (ValueError, IndexError) as exc:
            drift.add(key, f"unreadable: {exc}")
            continue
        if rows != sorted(rows, key=lambda r: (r.start, r.datakey)):
            drift.add(key, "rows are not sorted by start")
        actual = {r.datakey.split("/", 3)[3]: (r.start, r.stop, r.datakey, str(r.filesize)) for r in rows}
        compare_rows(key, expected, actual, drift)
        if not expected:
            drift.add(key, "index file of a partition with no objects")
        summaries[partition] = {**summarize(Row(*c[:3], int(c[3])) for c in expected.values()), "modified": ""}
    for partition in set(listing.partitions) - set(summaries):
        rows = listing.partitions[partition].values()
        summaries[partition] = {**summarize(Row(*c[:3], int(c[3])) for c in rows), "modified": ""}
    rejects_data = _read(s3, rules.name, rules.index_key(REJECTS_PARTITION))
    actual_rejects = {k: (k, r, str(s)) for k, r, s in csv_to_rejects(rejects_data)} if rejects_data else {}
    compare_rows(rules.index_key(REJECTS_PARTITION), listing.rejects, actual_rejects, drift)
    _verify_catalog(s3, rules, summaries, drift)
    return drift


def _verify_catalog(s3, rules: BucketRules, summaries: dict[str, dict], drift: Drift) -> None:
    data = _read(s3, rules.name, CATALOG_KEY)
    if data is None:
        drift.add(CATALOG_KEY, "missing")
        return
    try:
        actual = json.loads(data)
    except ValueError as exc:
        drift.add(CATALOG_KEY, f"not JSON: {exc}")
        return
    expected = catalog_from_summaries(rules, summaries)
    for field_name in ("version", "endpoint", "status", "egress"):
        if actual.get(field_name) != expected[field_name]:
            drift.add(CATALOG_KEY, f"{field_name} is {actual.get(field_name)!r}, expected {expected[field_name]!r}")
    got = {e.get("id"): e for e in actual.get("catalog", [])}
    want = {e["id"]: e for e in expected["catalog"]}
    for dataset in sorted(set(want) - set(got)):
        drift.add(CATALOG_KEY, f"entry {dataset} is missing")
    for dataset in sorted(set(got) - set(want)):
        drift.add(CATALOG_KEY, f"entry {dataset} has no objects")
    for dataset in sorted(set(got) & set(want)):
        for field_name in ("index", "start", "stop", "filetype", "indextype", "title"):
            if got[dataset].get(field_name) != want[dataset][field_name]:
                drift.add(CATALOG_KEY, f"entry {dataset} {field_name} is {got[dataset].get(field_name)!r}, "
                                       f"expected {want[dataset][field_name]!r}")


# ---------------------------------------------------------------------- command
def run(args) -> int:
    config = load_or_exit(args.config)
    region = args.region or config.region
    buckets = bucket_rules(config, region or aws.client("s3", region=region).meta.region_name)
    out = Console(file=sys.stdout)
    if args.action == "federation":
        out.print_json(json.dumps(federation_document(buckets.values())))
        return 0
    if args.bucket not in buckets:
        Console(stderr=True).print(f"[red]{args.bucket} is not a registry bucket of {config.source}[/] "
                                   f"(known: {', '.join(sorted(buckets)) or 'none'})")
        return 2
    rules = buckets[args.bucket]
    s3 = aws.client("s3", region=region)
    if args.action == "rebuild":
        store = StateStore(aws.client("dynamodb", region=region), args.table or state_table_name(config))
        listing = rebuild(s3, store, rules, workers=args.workers)
        rows = sum(len(p) for p in listing.partitions.values())
        out.print(f"rebuilt s3://{rules.name}: {listing.objects} objects, {rows} rows in "
                  f"{len(listing.partitions)} index files, {len(listing.rejects)} rejects")
        return 0
    drift = verify(s3, rules, workers=args.workers)
    if not drift:
        out.print(f"s3://{rules.name}: index matches the objects")
        return 0
    # One plain line per problem: readable, and greppable in a cron job's mail.
    for where, what in drift.problems:
        print(f"{where}: {what}")
    print(f"{len(drift.problems)} problem(s) in the index of s3://{rules.name}; "
          f"repair with: heliocloud registry rebuild {rules.name}")
    return 1
