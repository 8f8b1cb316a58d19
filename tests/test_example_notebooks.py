"""The example notebooks run unchanged against the sandbox: its S3 (moto) with the registry
indexing the seeded samples, its HelioDataRegistry.json, and a Dask Gateway whose schedulers
and workers run in the researcher environment, like a Daskhub's. Each notebook gets only the
environment a hub gives a notebook server, and the SDO burst must find every seeded mean."""
from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest
import requests
from notebook_support import (
    NOTEBOOKS,
    REPO,
    RESEARCHER_ENV,
    RESEARCHER_PYTHON,
    kernel_env,
    run_notebook,
)

from heliocloud.config import load
from heliocloud.sandbox import Sandbox, catalog_registry
from heliocloud.sandbox import registry as registry_part
from heliocloud.sandbox.gateway import LocalGateway
from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS
from heliocloud.sandbox.samples import seed

pytestmark = [pytest.mark.gateway,
              pytest.mark.skipif(not RESEARCHER_PYTHON.exists(), reason="needs the researcher environment")]


@pytest.fixture(scope="module")
def sandbox(moto_server, tmp_path_factory):
    """Registry, catalog registry, samples and gateway on the session's moto server."""
    moto_server.reset()
    state = tmp_path_factory.mktemp("notebooks")
    box = Sandbox(config=load(REPO / "instance.yaml"), state_dir=state, aws_url=moto_server.url)
    with ExitStack() as stack:
        stack.callback(box.stop)
        registry_part.start(box)
        catalog_registry.start(box)
        seeded = seed(box)
        assert json.loads(Path(box.endpoints["samples"]).read_text()) == seeded
        log = stack.enter_context(open(state / "gateway.log", "ab"))
        gateway = LocalGateway(box.config.daskhub, workdir=state / "gateway", environment=box.env, log=log,
                               python_env=RESEARCHER_ENV)
        gateway.start()
        box.on_stop(gateway.stop)
        box.endpoints["dask_gateway"] = gateway.client_settings()
        yield box


def notebook_env(box: Sandbox) -> dict[str, str]:
    return kernel_env(aws_url=box.aws_url, region=box.region,
                      catalog_registry_url=box.endpoints["catalog_registry_url"], gateway=box.endpoints["dask_gateway"],
                      credentials={k: SANDBOX_CREDENTIALS[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")})


def test_the_catalog_registry_lists_every_bucket_to_anyone(sandbox):
    document = requests.get(sandbox.endpoints["catalog_registry_url"], timeout=10).json()  # no credentials
    assert [entry["endpoint"] for entry in document["registry"]] == [
        f"s3://{name}/" for name in sandbox.endpoints["registry"]["buckets"]]


@pytest.fixture(scope="module")
def samples(sandbox) -> dict:
    """What was seeded, with each AIA image's mean (samples.json)."""
    return json.loads(Path(sandbox.endpoints["samples"]).read_text())


def test_the_samples_are_recorded(samples):
    assert len(samples["aia_0094"]) == 48
    assert len(samples["mms1_fgm_brst_l2"]) == 3 and len(samples["goes16_xrsf_l2_flx1s"]) == 3


def test_workers_run_in_the_researcher_environment(sandbox):
    from dask_gateway import BasicAuth, Gateway

    settings = sandbox.endpoints["dask_gateway"]
    with Gateway(settings["address"], proxy_address=settings["proxy_address"],
                 auth=BasicAuth("researcher", settings["password"])) as gateway, gateway.new_cluster() as cluster:
        cluster.scale(1)
        with cluster.get_client() as client:
            client.wait_for_workers(1, timeout=60)
            prefixes = set(client.run(lambda: sys.prefix).values())
    assert prefixes == {str(RESEARCHER_ENV)}


def test_the_four_notebooks_are_there():
    assert [n.stem for n in NOTEBOOKS] == ["cloudcatalog_search", "dask_gateway_burst", "s3_access", "sdo_aia_burst"]
    for notebook in NOTEBOOKS:
        document = json.loads(notebook.read_text())
        assert document["metadata"]["kernelspec"]["name"] == "python3"
        assert all(not cell.get("outputs") and cell.get("execution_count") is None
                   for cell in document["cells"] if cell["cell_type"] == "code"), f"{notebook.name} stores outputs"


@pytest.mark.parametrize("notebook", [n for n in NOTEBOOKS if n.stem != "sdo_aia_burst"], ids=lambda n: n.stem)
def test_notebook_runs_to_the_end(sandbox, notebook, tmp_path):
    run_notebook(notebook, env=notebook_env(sandbox), workdir=tmp_path)


def test_sdo_burst_finds_every_seeded_mean(sandbox, samples, tmp_path):
    run = run_notebook(REPO / "docs" / "examples" / "sdo_aia_burst.ipynb", env=notebook_env(sandbox),
                       workdir=tmp_path, collect=["results"])
    truth = samples["aia_0094"]
    results = run.collected["results"]
    assert sorted(results) == sorted(truth)
    assert all(abs(results[key] - truth[key]) < 1e-6 for key in truth)


def test_notebooks_name_no_endpoint_credential_or_bucket():
    forbidden = ["127.0.0.1", "localhost", "testing", "helio-data-example", "password", "endpoint_url", "os.environ"]
    for notebook in NOTEBOOKS:
        code = "\n".join("".join(c["source"]) for c in json.loads(notebook.read_text())["cells"]
                         if c["cell_type"] == "code")
        assert not [word for word in forbidden if word in code], notebook.name


@pytest.mark.unit
def test_the_runner_uses_the_sandbox_researcher_environment():
    from heliocloud.sandbox import hub

    assert RESEARCHER_ENV == hub.RESEARCHER_ENV and RESEARCHER_PYTHON == hub.RESEARCHER_ENV / "bin" / "python"
