"""The researcher's first minutes on the sandbox hub, measured in one run:

* sandbox start (``heliocloud sandbox`` to endpoints.json, with N sample AIA images seeded and
  indexed), and a bare hub start (LocalHub alone) for comparison;
* sign-in through the hosted sign-in, server spawn on the `small` profile, a kernel's first cell;
* the SDO AIA irradiance burst notebook (docs/examples/sdo_aia_burst.ipynb) over the N images, run
  unchanged in a kernel of that server: files/s, side by side with one process reading the same
  files from S3 in a loop (the ratio says what the Dask cluster adds over a plain loop here).

    .venv/bin/python benchmarks/sandbox_hub.py [--files 1000]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from heliocloud import daskhub  # noqa: E402
from heliocloud.config import load  # noqa: E402
from heliocloud.sandbox.hub import LocalHub  # noqa: E402
from heliocloud.sandbox.researcher import Kernel, notebook_cells, sign_in, spawn  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "docs" / "examples" / "sdo_aia_burst.ipynb"


def bare_hub_start(workdir: Path) -> float:
    config = load(REPO / "instance.yaml")
    wiring = daskhub.HubWiring(hub_url="http://127.0.0.1", cognito_url="http://127.0.0.1", client_id="local",
                               scratch_bucket="scratch", region="us-east-1")
    hub = LocalHub(daskhub.hub_values(config.daskhub, admins=[], wiring=wiring), workdir=workdir)
    began = time.monotonic()
    with hub:
        return time.monotonic() - began


def loop_means(endpoints: dict, datakeys: list[str]) -> float:
    """One process, one file after another: GET + FITS parse + mean, as a notebook loop would."""
    from astropy.io import fits

    s3 = boto3.client("s3", endpoint_url=endpoints["s3"], region_name=endpoints["region"],
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    began = time.monotonic()
    for datakey in datakeys:
        bucket, key = datakey.removeprefix("s3://").split("/", 1)
        with fits.open(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read())) as hdus:
            float(next(h for h in hdus if h.data is not None).data.mean())
    return len(datakeys) / (time.monotonic() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000, help="sample AIA images to seed (default 1000)")
    args = parser.parse_args()
    console = Console()
    state = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    rows: list[tuple[str, str]] = []

    with console.status("bare hub start (LocalHub alone)"):
        rows.append(("bare hub start (JupyterHub + proxy)", f"{bare_hub_start(state / 'bare'):.1f} s"))

    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "heliocloud.cli", "sandbox", "--state-dir", str(state / "sbx"),
                             "--aia-samples", str(args.files)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        with console.status(f"sandbox start, {args.files} AIA images seeded and indexed"):
            while not (state / "sbx" / "endpoints.json").exists():
                if proc.poll() is not None:
                    raise SystemExit(f"sandbox exited: {proc.stderr.read()[-2000:]}")
                time.sleep(0.2)
        rows.append((f"sandbox start ({args.files} images seeded + indexed)", f"{time.monotonic() - began:.1f} s"))
        endpoints = json.loads((state / "sbx" / "endpoints.json").read_text())
        hub, alice = endpoints["hub"], endpoints["users"]["alice"]

        began = time.monotonic()
        session = sign_in(hub["url"], alice["email"], alice["password"])
        rows.append(("sign-in (hosted sign-in → hub cookie)", f"{time.monotonic() - began:.2f} s"))
        with console.status("spawning alice's server"):
            rows.append(("server spawn (profile small)", f"{spawn(session, hub['url'], alice['email'], 'small'):.1f} s"))
        import requests

        token = requests.post(f"{hub['api_url']}/users/{alice['email']}/tokens", json={"note": "benchmark"},
                              headers={"Authorization": f"token {hub['api_token']}"}, timeout=10).json()["token"]
        began = time.monotonic()
        with Kernel(f"{hub['url']}/user/{alice['email']}", token) as kernel:
            kernel.run("pass")
            rows.append(("kernel start + first cell", f"{time.monotonic() - began:.1f} s"))
            with console.status(f"the SDO notebook over {args.files} images"):
                began = time.monotonic()
                for cell in notebook_cells(NOTEBOOK):
                    kernel.run(cell)
                notebook_seconds = time.monotonic() - began
                results = kernel.value("results")
        assert len(results) == args.files, f"the notebook found {len(results)} of {args.files} files"
        notebook_rate = len(results) / notebook_seconds
        with console.status("the same files in a plain loop"):
            loop_rate = loop_means(endpoints, sorted(results))
        rows.append(("SDO notebook, whole (find → map → gather → plot)",
                     f"{notebook_seconds:.1f} s = {notebook_rate:.0f} files/s"))
        rows.append(("one process reading the same files in a loop", f"{loop_rate:.0f} files/s"))
        rows.append(("notebook / loop", f"{notebook_rate / loop_rate:.2f}x"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=120)

    table = Table(title=f"Sandbox hub, {os.cpu_count()} cores")
    table.add_column("step")
    table.add_column("measured", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
