"""Rebuild: one year of AIA 94 Å at 4-minute cadence (130,000 objects); how long does
`heliocloud registry rebuild` take compared with a bare list_objects_v2 pass over the same bucket?

Both run against one backend in this process (moto's in-process mock: populating a server with
130,000 objects over HTTP would take longer than everything else together), so the ratio
compares like with like. Goal: rebuild ÷ listing ≤ 2.0.

    .venv/bin/python benchmarks/registry_rebuild.py [--n 130000] [--verify]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3  # noqa: E402
from hc_registry.state import StateStore  # noqa: E402
from moto import mock_aws  # noqa: E402
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.s3.models import s3_backends  # noqa: E402
from rich.console import Console  # noqa: E402

from heliocloud.commands.registry import rebuild, verify  # noqa: E402
from heliocloud.config import load  # noqa: E402
from heliocloud.registry_config import bucket_rules  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TABLE = "bench-registry-state"


def bare_listing(s3, bucket: str) -> int:
    return sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=130_000)
    parser.add_argument("--verify", action="store_true", help="also time `registry verify` (one more listing)")
    args = parser.parse_args()
    rules = next(iter(bucket_rules(load(REPO / "instance.yaml"), "us-east-1").values()))
    quiet = Console(file=open(os.devnull, "w"))
    with mock_aws():
        s3, ddb = boto3.client("s3"), boto3.client("dynamodb")
        s3.create_bucket(Bucket=rules.name)
        ddb.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                               {"AttributeName": "sk", "AttributeType": "S"}],
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                    {"AttributeName": "sk", "KeyType": "RANGE"}])
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        started = time.monotonic()
        first = datetime(2024, 1, 1)
        for i in range(args.n):
            moment = first + timedelta(minutes=4 * i)
            key = f"sdo/aia/{moment:%Y%m%d}/0094/sdo_aia_h2_{moment:%Y%m%dT%H%M%S}_0094_v1.fits"
            backend.put_object(rules.name, key, b"\0" * 16, disable_notification=True)
        populate = time.monotonic() - started

        timings = {}
        started = time.monotonic()
        listed = bare_listing(s3, rules.name)
        timings["list"] = time.monotonic() - started
        started = time.monotonic()
        listing = rebuild(s3, StateStore(ddb, TABLE), rules, console=quiet)
        timings["rebuild"] = time.monotonic() - started
        drift = None
        if args.verify:
            started = time.monotonic()
            drift = verify(s3, rules, console=quiet)
            timings["verify"] = time.monotonic() - started
        rows = sum(len(p) for p in listing.partitions.values())
    bare = timings["list"]
    print(f"registry rebuild: {args.n} AIA 94 Å keys (4-minute cadence from 2024-01-01), in-process moto "
          f"(populated in {populate:.0f} s)")
    print(f"{'bare list_objects_v2 pass':28s} {bare:7.2f} s  ({listed} keys)")
    print(f"{'heliocloud registry rebuild':28s} {timings['rebuild']:7.2f} s  ({rows} rows in "
          f"{len(listing.partitions)} CSV files)")
    print(f"{'rebuild ÷ listing':28s} {timings['rebuild'] / bare:7.2f}    (goal ≤ 2.0)")
    if "verify" in timings:
        print(f"{'heliocloud registry verify':28s} {timings['verify']:7.2f} s  ({timings['verify'] / bare:.2f} × listing; "
              f"{'exact' if not drift else f'{len(drift.problems)} problems'})")


if __name__ == "__main__":
    main()
