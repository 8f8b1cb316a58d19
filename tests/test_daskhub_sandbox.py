"""The sandbox's Dask Gateway: the local gateway started from the instance config (here in its
password mode, for scripts without a hub), usable exactly as the SDO notebook uses it, with
workers reading the sandbox's S3; every process it started ends with it. The hub-mode gateway of
`heliocloud sandbox` is tested in test_sandbox_hub.py."""
from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from dask_gateway import BasicAuth, Gateway
from gateway_deadline import deadline  # noqa: F401 (autouse fixture)

from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import daskhub as daskhub_part
from heliocloud.sandbox.gateway import LocalGateway
from heliocloud.sandbox.moto import MotoServer
from heliocloud.sandbox.run import PARTS

pytestmark = pytest.mark.gateway
REPO = Path(__file__).resolve().parents[1]


def test_hub_and_gateway_are_the_sandbox_part_of_the_daskhub_component():
    assert ("daskhub", daskhub_part.start) in PARTS


def test_sdo_flow_against_the_sandbox(tmp_path, monkeypatch):
    with MotoServer() as moto:
        sandbox = Sandbox(config=load(REPO / "instance.yaml"), state_dir=tmp_path, aws_url=moto.url)
        for key, value in sandbox.env.items():  # as `heliocloud sandbox` does for its own process
            monkeypatch.setenv(key, value)
        started = []
        try:
            log = open(tmp_path / "gateway.log", "ab")  # noqa: SIM115 - closed by sandbox.stop()
            sandbox.on_stop(log.close)
            server = LocalGateway(sandbox.config.daskhub, workdir=tmp_path / "gateway", environment=sandbox.env,
                                  log=log).start()
            sandbox.on_stop(server.stop)
            info = server.client_settings()
            assert info["auth"] == "basic"

            s3 = sandbox.client("s3")
            s3.create_bucket(Bucket="helio-sdo")
            files = [f"sdo/aia/20240101/0094/sdo_aia_h2_20240101T{h:02d}0000_0094_v1.fits" for h in range(6)]
            for key in files:
                s3.put_object(Bucket="helio-sdo", Key=key, Body=b"SIMPLE  =                    T" + b" " * 50)

            def read_fits_header(key: str) -> tuple[str, bytes]:
                """Runs on a Dask worker (shipped by value): plain boto3, which finds the sandbox's S3
                through AWS_ENDPOINT_URL, as notebook code would."""
                import boto3

                body = boto3.client("s3").get_object(Bucket="helio-sdo", Key=key, Range="bytes=0-29")["Body"]
                return key, body.read()

            with Gateway(info["address"], proxy_address=info["proxy_address"],
                         auth=BasicAuth("alice", info["password"])) as gateway:
                options = gateway.cluster_options()
                options.worker_cores = 1
                options.worker_memory = 1
                cluster = gateway.new_cluster(options)
                client = cluster.get_client()
                cluster.adapt(minimum=1, maximum=2)
                results = client.gather(client.map(read_fits_header, files))
                assert [key for key, _ in results] == files
                assert all(header.startswith(b"SIMPLE  =") for _, header in results)
                root = psutil.Process(server.process.pid)
                started = [root, *root.children(recursive=True)]
                client.close()
                cluster.close()
        finally:
            sandbox.stop()
    assert len(started) >= 4, "the gateway, its proxy, a scheduler and a worker were running"
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == []
    assert "Dask-Gateway server started" in (tmp_path / "gateway.log").read_text()
