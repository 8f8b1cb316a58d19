"""Burst: upload N objects into a sandbox-like moto server as fast as 8 threads can, while the
sandbox's indexer (two pollers, same handler as the Lambda) keeps the index up to date.

Prints side by side: upload throughput, index throughput (N ÷ first upload → index complete),
their ratio (goal ≥ 0.9), seconds from the last upload until the index is complete (goal ≤ 30),
and index S3 writes per object (goal ≤ 0.01). The indexer runs in its own process, as in
`heliocloud sandbox`; index writes are counted on its S3 client (PUT/DELETE of index keys).

    .venv/bin/python benchmarks/registry_burst.py [--n 20000] [--threads 8]
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402

from rich.console import Console  # noqa: E402

from heliocloud.commands.registry import verify  # noqa: E402
from heliocloud.config import load  # noqa: E402
from heliocloud.registry_config import bucket_rules  # noqa: E402
from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS, MotoServer  # noqa: E402
from heliocloud.sandbox.registry import POLLERS  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TABLE, QUEUE = "bench-registry-state", "bench-registry-events"


def aia_key(i: int, start=datetime(2024, 11, 20)) -> str:
    moment = start + timedelta(minutes=4 * i)
    return f"sdo/aia/{moment:%Y%m%d}/0094/sdo_aia_h2_{moment:%Y%m%dT%H%M%S}_0094_v1.fits"


def run_indexer(url: str, ready, stop, writes) -> None:
    """Child process: provision like the sandbox, then two pollers until told to stop."""
    os.environ.update({**SANDBOX_CREDENTIALS, "AWS_ENDPOINT_URL": url, "AWS_DEFAULT_REGION": "us-east-1"})
    from hc_registry.indexer import Indexer
    from hc_registry.state import StateStore

    from heliocloud.sandbox.registry import Poller, Publisher, provision

    rules = bucket_rules(load(REPO / "instance.yaml"), "us-east-1")
    config = Config(max_pool_connections=20)
    s3, sqs, ddb = (boto3.client(s, config=config) for s in ("s3", "sqs", "dynamodb"))
    bucket = next(iter(rules.values()))

    def count(params, **_):  # provide-client-params: the API call's own parameters
        key = params.get("Key", "")
        if bucket.is_index_object(key):
            with writes.get_lock():
                writes.value += 1

    s3.meta.events.register("provide-client-params.s3.PutObject", count)
    s3.meta.events.register("provide-client-params.s3.DeleteObject", count)
    queue_url = provision(s3=s3, sqs=sqs, dynamodb=ddb, buckets=rules, table=TABLE, queue=QUEUE)
    indexer = Indexer(rules, s3=s3, store=StateStore(ddb, TABLE))
    stopping = threading.Event()
    publisher = Publisher(indexer, stopping)
    threads = [threading.Thread(target=publisher.run)]
    threads += [threading.Thread(target=Poller(sqs, queue_url, indexer, publisher, stopping).run)
                for _ in range(POLLERS)]
    for t in threads:
        t.start()
    ready.set()
    stop.wait()
    stopping.set()
    for t in threads:
        t.join()


def indexed_rows(ddb, bucket: str) -> int:
    items = ddb.query(TableName=TABLE, KeyConditionExpression="pk = :pk", ConsistentRead=True,
                      ExpressionAttributeValues={":pk": {"S": f"{bucket}#partitions"}})["Items"]
    return sum(int(i["row_count"]["N"]) for i in items if "row_count" in i and i["sk"]["S"] != "_rejects")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--trace", action="store_true", help="print queue depth and progress every few seconds")
    args = parser.parse_args()
    rules = next(iter(bucket_rules(load(REPO / "instance.yaml"), "us-east-1").values()))
    with MotoServer() as moto:
        os.environ.update({**SANDBOX_CREDENTIALS, "AWS_ENDPOINT_URL": moto.url, "AWS_DEFAULT_REGION": "us-east-1"})
        ctx = multiprocessing.get_context("spawn")
        ready, stop, writes = ctx.Event(), ctx.Event(), ctx.Value("l", 0)
        child = ctx.Process(target=run_indexer, args=(moto.url, ready, stop, writes))
        child.start()
        try:
            if not ready.wait(120):
                raise SystemExit("the indexer process did not start")
            timings = measure(args, rules.name)
        finally:
            stop.set()
            child.join(60)
            if child.is_alive():
                child.terminate()
        drift = verify(boto3.client("s3"), rules, console=Console(file=open(os.devnull, "w")))
    report(args, timings, writes.value, drift)


def measure(args, bucket: str) -> tuple[float, float, float]:
    """Upload with ``args.threads`` threads; return (started, last upload done, index complete)."""
    s3 = boto3.client("s3", config=Config(max_pool_connections=args.threads * 2))
    ddb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    body = b"\0" * 1024
    uploading = threading.Event()
    uploading.set()

    def trace() -> None:
        while uploading.is_set():
            depth = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
            print(f"t={time.monotonic() - started:6.1f}s queued {depth['ApproximateNumberOfMessages']:>5} "
                  f"in flight {depth['ApproximateNumberOfMessagesNotVisible']:>4} "
                  f"indexed {indexed_rows(ddb, bucket):>6}", file=sys.stderr, flush=True)
            time.sleep(5)

    started = time.monotonic()
    if args.trace:
        threading.Thread(target=trace, daemon=True).start()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(lambda i: s3.put_object(Bucket=bucket, Key=aia_key(i), Body=body), range(args.n)))
    uploaded = time.monotonic()
    while indexed_rows(ddb, bucket) < args.n:
        time.sleep(0.25)
        if time.monotonic() - uploaded > 900:
            raise SystemExit("index not complete 15 minutes after the last upload")
    complete = time.monotonic()
    uploading.clear()
    return started, uploaded, complete


def report(args, timings: tuple[float, float, float], writes: int, drift) -> None:
    started, uploaded, complete = timings
    upload_rate, index_rate = args.n / (uploaded - started), args.n / (complete - started)
    print(f"registry burst: {args.n} objects, {args.threads} upload threads, moto server + S3→SQS, "
          f"{POLLERS} pollers")
    print(f"{'upload throughput':32s} {upload_rate:8.1f} objects/s  ({uploaded - started:.1f} s)")
    print(f"{'index throughput':32s} {index_rate:8.1f} objects/s  ({complete - started:.1f} s to complete)")
    print(f"{'index ÷ upload throughput':32s} {index_rate / upload_rate:8.3f}   (goal ≥ 0.9)")
    print(f"{'last upload → index complete':32s} {complete - uploaded:8.1f} s   (goal ≤ 30)")
    print(f"{'index S3 writes per object':32s} {writes / args.n:8.4f}   ({writes} writes; goal ≤ 0.01)")
    print(f"{'verify (index vs listing)':32s} {'exact' if not drift else f'{len(drift.problems)} problems'}")


if __name__ == "__main__":
    main()
