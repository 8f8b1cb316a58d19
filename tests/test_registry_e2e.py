"""End to end: the sandbox's registry part indexes what is uploaded, and the real `cloudcatalog`
client (the one researchers use) reads it from moto."""
from __future__ import annotations

import json
import time
import warnings

import pytest

from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import registry as registry_part
from tests.registry_support import BUCKET, REPO, aia_key, mms_key

pytestmark = pytest.mark.moto


@pytest.fixture
def sandbox(moto, tmp_path):
    box = Sandbox(config=load(REPO / "instance.yaml"), state_dir=tmp_path, aws_url=moto.url)
    registry_part.start(box)
    yield box
    box.stop()


def wait_for_catalog(s3, predicate, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        catalog = json.loads(s3.get_object(Bucket=BUCKET, Key="catalog.json")["Body"].read())
        if predicate(catalog):
            return catalog
        time.sleep(0.2)
    raise TimeoutError(f"catalog not as expected within {timeout} s: {catalog}")


def test_uploads_reach_the_cloudcatalog_client_within_seconds(sandbox):
    with warnings.catch_warnings():
        # The client uses DataFrame.rename(inplace=True), which pandas 3.1 deprecates.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        uploads_reach_the_client(sandbox)


def uploads_reach_the_client(sandbox):
    from cloudcatalog import CloudCatalog

    s3 = sandbox.client("s3")
    assert sandbox.endpoints["registry"]["buckets"] == [BUCKET]
    assert wait_for_catalog(s3, lambda c: c["catalog"] == [])["status"] == {"code": 1200, "message": "OK"}

    aia = [aia_key(f"20241231T23{m:02d}00") for m in range(40, 60, 4)] + [aia_key("20250101T000000")]
    mms = [mms_key("20241231235959"), mms_key("20250101000000")]
    started = time.monotonic()
    for n, key in enumerate(aia + mms):
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"\0" * (100 + n))
    wait_for_catalog(s3, lambda c: {e["id"]: e["stop"] for e in c["catalog"]} == {
        "aia_0094": "2025-01-01T00:04:00Z", "mms1_fgm_brst_l2": "2025-01-01T00:00:00Z"})
    assert time.monotonic() - started < 15

    client = CloudCatalog(f"s3://{BUCKET}")
    entry = client.get_entry("aia_0094")
    assert (entry["start"], entry["filetype"], entry["index"]) == ("2024-12-31T23:40:00Z", "fits", f"s3://{BUCKET}/index/")
    frame = client.request_cloud_catalog("aia_0094", "2024-12-31T23:50:00Z", "2025-01-01T00:10:00Z")
    assert list(frame.columns[:4]) == ["start", "stop", "datakey", "filesize"]
    # Rows across the year boundary come from both yearly files, in time order.
    assert [d.rsplit("_", 3)[1] for d in frame["datakey"]] == [
        "20241231T234800", "20241231T235200", "20241231T235600", "20250101T000000"]
    assert list(frame["filesize"]) == [102, 103, 104, 105]
    mms_frame = client.request_cloud_catalog("mms1_fgm_brst_l2", "2024-12-31T00:00:00Z", "2025-01-02T00:00:00Z")
    assert [f"s3://{BUCKET}/{k}" for k in mms] == list(mms_frame["datakey"])

    s3.delete_object(Bucket=BUCKET, Key=aia[-1])
    wait_for_catalog(s3, lambda c: {e["id"]: e["stop"] for e in c["catalog"]}["aia_0094"] == "2025-01-01T00:00:00Z")
    frame = CloudCatalog(f"s3://{BUCKET}").request_cloud_catalog("aia_0094", "2024-12-31T23:50:00Z",
                                                                 "2025-01-01T00:10:00Z")
    assert len(frame) == 3
