"""The researcher's journey on the sandbox, as the SDO demo runs it: 1,000 real FITS files land in
the data bucket, the index finds them through the real cloudcatalog client, a Dask Gateway cluster
maps a FITS reader over them, and every mean matches its file. Runs docs/examples/sdo_aia_burst.py."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sandbox_support import running_sandbox

pytestmark = pytest.mark.gateway
REPO = Path(__file__).resolve().parents[1]
FILES = 1000


def load_example():
    spec = importlib.util.spec_from_file_location("sdo_aia_burst", REPO / "docs" / "examples" / "sdo_aia_burst.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the example ships its functions to the workers by value
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("journey")) as (proc, endpoints):
        saved = dict(os.environ)
        os.environ.update({"AWS_ENDPOINT_URL": endpoints["s3"], "AWS_DEFAULT_REGION": endpoints["region"],
                           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        yield endpoints
        os.environ.clear()
        os.environ.update(saved)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 0


def test_sdo_burst_over_indexed_fits_files(sandbox, capsys):
    example = load_example()
    bucket = sandbox["registry"]["buckets"][0]
    start, stop = "2026-01-01T00:00:00Z", "2026-01-08T00:00:00Z"

    began = time.monotonic()
    truth = example.upload_samples(bucket, FILES, datetime(2026, 1, 1, tzinfo=timezone.utc))
    uploaded = time.monotonic()
    files = example.wait_for_index(bucket, start, stop, FILES, timeout=180)
    indexed = time.monotonic()
    assert len(files) == FILES
    assert list(files.datakey) == sorted(truth)  # the index is sorted by time = by key here

    gateway = example.connect(sandbox)
    means = example.burst(files.datakey, gateway=gateway, worker_cores=1, worker_memory=1, maximum=2)
    done = time.monotonic()
    assert len(means) == FILES
    assert all(abs(truth[key] - mean) < 1e-4 for key, mean in zip(files.datakey, means))
    with capsys.disabled():
        print(f"\njourney: upload {FILES / (uploaded - began):.0f} files/s, index complete "
              f"{indexed - uploaded:.1f} s after the last upload, burst {FILES / (done - indexed):.0f} files/s")


def test_the_example_script_runs_as_documented(sandbox):
    """The command line in the example's docstring, against the same sandbox, over 20 more files."""
    endpoints_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"journey-endpoints-{os.getpid()}.json"
    endpoints_file.write_text(json.dumps(sandbox))
    try:
        result = subprocess.run(
            [sys.executable, str(REPO / "docs" / "examples" / "sdo_aia_burst.py"), "--endpoints", str(endpoints_file),
             "--upload", "20", "--start", "2027-03-01T00:00:00Z", "--stop", "2027-03-02T00:00:00Z",
             "--worker-cores", "1", "--worker-memory", "1", "--workers", "1"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        endpoints_file.unlink()
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert "20 files" in result.stdout and "every mean matches its file" in result.stdout
