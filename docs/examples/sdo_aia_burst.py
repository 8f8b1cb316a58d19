"""Burst over SDO/AIA 94 Å images with Dask, the way the SDO demo does, on any HelioCloud.

Find the files through the CloudCatalog index, start a Dask Gateway cluster, map a function
that reads each FITS file straight from S3 over the workers, and gather the results.

In a Daskhub notebook (the Gateway and S3 need no settings there):

    from sdo_aia_burst import find_files, burst
    files = find_files("my-instance-data", "aia_0094", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    means = burst(files.datakey)

Against the sandbox (`make sandbox` in another terminal), with sample images uploaded first:

    python docs/examples/sdo_aia_burst.py --endpoints .sandbox/endpoints.json --upload 200 \
        --worker-cores 1 --worker-memory 1 --workers 2
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from datetime import datetime, timezone

DATASET = "aia_0094"


def fits_mean(datakey: str) -> float:
    """Runs on a Dask worker: read one FITS object from S3 and return the image mean."""
    import boto3
    from astropy.io import fits

    bucket, key = datakey.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with fits.open(io.BytesIO(body)) as hdus:
        image = next(h for h in hdus if h.data is not None)  # compressed AIA files keep it in HDU 1
        return float(image.data.mean())


def find_files(bucket: str, start: str, stop: str, dataset: str = DATASET):
    """The dataset's files between start and stop, from the bucket's CloudCatalog index."""
    from cloudcatalog import CloudCatalog

    catalog = CloudCatalog(bucket)
    ids = [entry_id for entry_id, _title in catalog.get_entries_id_title()]
    if dataset not in ids:
        raise LookupError(f"{dataset} is not in s3://{bucket}/catalog.json (has: {', '.join(ids) or 'nothing'})")
    return catalog.request_cloud_catalog(dataset, start_date=start, stop_date=stop)


def connect(endpoints: dict | None = None, user: str = "alice"):
    """The Daskhub's gateway (no arguments: JupyterHub configures it), or the sandbox's, with that
    demo user's hub token from its endpoints.json."""
    from dask_gateway import Gateway
    from dask_gateway.auth import JupyterHubAuth

    if not endpoints:
        return Gateway()
    gw = endpoints["dask_gateway"]
    return Gateway(gw["address"], proxy_address=gw["proxy_address"],
                   auth=JupyterHubAuth(api_token=endpoints["users"][user]["hub_token"]))


def burst(datakeys, *, gateway=None, worker_cores: int = 4, worker_memory: int = 4, maximum: int = 50) -> list[float]:
    """The SDO demo's calls: options, new cluster, adapt, map, gather; the cluster is shut down after."""
    gateway = gateway or connect()
    options = gateway.cluster_options()
    options.worker_cores = worker_cores
    options.worker_memory = worker_memory
    cluster = gateway.new_cluster(options)
    try:
        client = cluster.get_client()
        client.upload_file(__file__)  # workers, including ones adapt adds later, can import fits_mean
        cluster.adapt(minimum=1, maximum=maximum)
        futures = client.map(fits_mean, list(datakeys))
        return client.gather(futures)
    finally:
        cluster.shutdown()


def upload_samples(bucket: str, count: int, first: datetime, *, threads: int = 8) -> dict[str, float]:
    """Upload ``count`` sample images at the 4-minute cadence; returns {datakey: true mean}.
    The images are the sandbox's own samples (heliocloud.sandbox.samples): --upload runs from the repo."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3

    from heliocloud.sandbox.samples import AIA_CADENCE, aia_key, sample_image

    s3 = boto3.client("s3")

    def put(index: int) -> tuple[str, float]:
        when = first + index * AIA_CADENCE
        body, mean = sample_image(when, index)
        key = aia_key(when)
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        return f"s3://{bucket}/{key}", mean

    with ThreadPoolExecutor(threads) as pool:
        return dict(pool.map(put, range(count)))


def wait_for_index(bucket: str, start: str, stop: str, expected: int, *, timeout: float = 120) -> object:
    """Poll the index through the cloudcatalog client until it lists ``expected`` files."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            files = find_files(bucket, start, stop)
            if len(files) >= expected:
                return files
        except (LookupError, OSError, ValueError, KeyError):
            files = None
        if time.monotonic() > deadline:
            found = 0 if files is None else len(files)
            raise TimeoutError(f"index lists {found} of {expected} files after {timeout:.0f} s")
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", help="sandbox endpoints.json (omit on a real Daskhub)")
    parser.add_argument("--bucket", help="data bucket (default: the sandbox's first bucket)")
    parser.add_argument("--upload", type=int, default=0, help="first upload this many sample images")
    parser.add_argument("--start", default="2026-01-01T00:00:00Z")
    parser.add_argument("--stop", default="2026-01-08T00:00:00Z")
    parser.add_argument("--worker-cores", type=int, default=4, help="cores per Dask worker (1-4)")
    parser.add_argument("--worker-memory", type=int, default=4, help="GB per Dask worker (1-8)")
    parser.add_argument("--workers", type=int, default=50, help="adapt maximum")
    args = parser.parse_args(argv)

    endpoints = json.load(open(args.endpoints)) if args.endpoints else None
    if endpoints:  # boto3 and the cloudcatalog client reach the sandbox's S3 through these
        os.environ.update({"AWS_ENDPOINT_URL": endpoints["s3"], "AWS_DEFAULT_REGION": endpoints["region"],
                           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    bucket = args.bucket or endpoints["registry"]["buckets"][0]
    first = datetime.fromisoformat(args.start.replace("Z", "+00:00")).astimezone(timezone.utc)
    truth = upload_samples(bucket, args.upload, first) if args.upload else {}

    began = time.monotonic()
    files = wait_for_index(bucket, args.start, args.stop, len(truth)) if truth else find_files(bucket, args.start, args.stop)
    indexed = time.monotonic()
    means = burst(files.datakey, gateway=connect(endpoints), worker_cores=args.worker_cores,
                  worker_memory=args.worker_memory, maximum=args.workers)
    done = time.monotonic()
    print(f"{len(files)} files: index ready in {indexed - began:.1f} s, burst {done - indexed:.1f} s "
          f"({len(files) / (done - indexed):.1f} files/s), overall mean {sum(means) / max(len(means), 1):.3f}")
    if truth:
        wrong = [k for k, m in zip(files.datakey, means) if abs(truth[k] - m) > 1e-4]
        print("every mean matches its file" if not wrong else f"{len(wrong)} means differ, e.g. {wrong[0]}")
        return 1 if wrong else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
