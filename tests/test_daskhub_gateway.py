"""The shipped helm/daskhub/gateway_config.py, proven in a real dask-gateway-server.

The server runs the same file the chart runs (only the backend is local processes instead of
Kubernetes pods) with the default instance's settings, and the SDO notebook's calls run against it.
"""
from __future__ import annotations

import copy
import gc
import time
from pathlib import Path

import boto3
import psutil
import pytest
from dask_gateway import Gateway

from gateway_deadline import deadline  # noqa: F401 (autouse fixture)
from heliocloud import daskhub
from heliocloud.config import load
from heliocloud.sandbox.gateway import LocalGateway
from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS, MotoServer

pytestmark = pytest.mark.gateway
GIB = 2**30
REPO = Path(__file__).resolve().parents[1]


def descendants(process) -> list[psutil.Process]:
    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def dask_processes(process) -> list[psutil.Process]:
    """Schedulers and workers under the gateway server (its proxy is a child too, and stays)."""
    return [p for p in descendants(process) if p.name() != "dask-gateway-proxy"]


@pytest.fixture(scope="module")
def daskhub_config() -> dict:
    config = copy.deepcopy(load(REPO / "instance.yaml").daskhub)
    # The one setting changed for the test: a small cap, so that hitting it is quick to observe.
    config["dask"]["max_workers_per_cluster"] = 2
    return config


@pytest.fixture(scope="module")
def s3():
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway_server(daskhub_config, s3, tmp_path_factory):
    environment = {**SANDBOX_CREDENTIALS, "AWS_ENDPOINT_URL": s3.url, "AWS_DEFAULT_REGION": "us-east-1"}
    server = LocalGateway(daskhub_config, workdir=tmp_path_factory.mktemp("gateway"), environment=environment)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def gateway(gateway_server):
    with Gateway(gateway_server.address, proxy_address=gateway_server.proxy_address,
                 auth=gateway_server.auth("alice")) as gw:
        yield gw
        for report in gw.list_clusters():
            gw.stop_cluster(report.name)
    # Client objects left to the garbage collector close themselves from whatever thread runs it,
    # which can deadlock distributed's loop bookkeeping; collect them here, at a safe point.
    gc.collect()


def wait_for_workers(client, n: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers = client.scheduler_info()["workers"]
        if len(workers) >= n:
            return workers
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {n} workers after {timeout} s")


def test_options_offer_the_configured_ranges(gateway, daskhub_config):
    options = gateway.cluster_options()
    assert dict(options) == {"worker_cores": 1, "worker_memory": 2.0, "profile": "cpu",
                             "image": daskhub.image(daskhub_config, "cpu")}
    options.worker_cores = 4
    options.worker_memory = 8
    options.profile = "gpu"
    for field, bad in [("worker_cores", 9), ("worker_cores", 0), ("worker_memory", 8.5), ("worker_memory", 0.5),
                       ("profile", "tpu")]:
        with pytest.raises(ValueError, match=field if field != "profile" else "tpu"):
            setattr(options, field, bad)


def test_the_server_enforces_the_ranges_too(gateway):
    """A client that skips its own checks is still refused, by the server, naming the option."""
    with pytest.raises(ValueError, match="worker_cores"):
        gateway.submit(worker_cores=9)
    assert gateway.list_clusters() == []


def test_sdo_notebook_flow_and_clean_shutdown(gateway, gateway_server):
    options = gateway.cluster_options()
    options.worker_cores = 4
    options.worker_memory = 4
    cluster = gateway.new_cluster(options)
    client = cluster.get_client()
    with pytest.warns(UserWarning, match="exceed resource limit of 2 workers"):
        cluster.adapt(minimum=1, maximum=50)  # the demo's maximum, capped by the config
    workers = wait_for_workers(client, 1)
    assert {(w["nthreads"], w["memory_limit"]) for w in workers.values()} == {(4, 4 * GIB)}

    files = [f"sdo/aia/20240101/0094/sdo_aia_h2_20240101T{h:02d}0000_0094_v1.fits" for h in range(24)]
    results = client.gather(client.map(lambda key: (key, len(key)), files))
    assert [key for key, _ in results] == files

    commands = [" ".join(p.cmdline()) for p in dask_processes(gateway_server.process)]
    assert any(" scheduler " in c for c in commands) and any(" worker " in c for c in commands)
    client.close()
    cluster.shutdown()
    deadline = time.monotonic() + 30
    while dask_processes(gateway_server.process) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert dask_processes(gateway_server.process) == []


def test_worker_memory_is_what_was_asked(gateway):
    options = gateway.cluster_options()
    options.worker_memory = 1.5
    with gateway.new_cluster(options) as cluster, cluster.get_client() as client:
        cluster.scale(1)
        (worker,) = wait_for_workers(client, 1).values()
        assert (worker["nthreads"], worker["memory_limit"]) == (1, int(1.5 * GIB))


def test_workers_per_cluster_are_capped(gateway):
    with gateway.new_cluster() as cluster, cluster.get_client() as client:
        with pytest.warns(UserWarning, match="Scaling to 2 instead"):
            cluster.scale(5)
        wait_for_workers(client, 2)
        time.sleep(2)  # give a third worker every chance to appear
        assert len(client.scheduler_info()["workers"]) == 2


def test_workers_read_the_sandbox_s3(gateway, s3):
    """AWS_ENDPOINT_URL reaches the workers, so notebook code runs unchanged against moto."""
    s3_client = boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1", aws_access_key_id="testing",
                             aws_secret_access_key="testing")
    s3_client.create_bucket(Bucket="helio-data")
    s3_client.put_object(Bucket="helio-data", Key="sdo/aia/test.fits", Body=b"SIMPLE  =                    T")

    def read(key):
        import boto3 as worker_boto3

        return worker_boto3.client("s3").get_object(Bucket="helio-data", Key=key)["Body"].read()[:6]

    with gateway.new_cluster() as cluster, cluster.get_client() as client:
        cluster.scale(1)
        assert client.submit(read, "sdo/aia/test.fits").result(timeout=60) == b"SIMPLE"


def test_stopping_the_server_leaves_no_process(daskhub_config, tmp_path):
    server = LocalGateway(daskhub_config, workdir=tmp_path).start()
    with Gateway(server.address, proxy_address=server.proxy_address, auth=server.auth("bob")) as gw:
        cluster = gw.new_cluster(shutdown_on_close=False)
        cluster.scale(1)
        with cluster.get_client() as client:
            wait_for_workers(client, 1)
        started = descendants(server.process)
        assert len(started) >= 3  # proxy, scheduler, worker
        server.stop()  # with the cluster still running
        cluster.close()
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == []
