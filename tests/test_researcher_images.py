"""The researcher images: the HelioCloud environment spec meets the tutorials' contract and the
gateway's version, the Dockerfiles are pinned, and the deploy-time build waits for its result.

The images themselves are built by CodeBuild in the account (no Docker here): what can be proven
offline is the spec, the Dockerfiles, the tag rule and the build handlers' decisions.
"""
from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml

from hc_images import handler
from heliocloud import daskhub

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]
# What the HelioCloud tutorials import, in notebooks and on workers.
CONTRACT = ["cloudcatalog", "astropy", "sunpy", "cdflib", "s3fs", "xarray", "hapiclient", "pyspedas",
            "dask", "distributed", "dask-gateway", "jupyterhub"]


def pyproject_pins() -> dict[str, str]:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    return dict(re.match(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==(.+)", d).groups() for d in deps)


def test_the_spec_pins_the_contract_and_matches_the_gateway_server():
    pins = daskhub.image_spec_pins()
    assert {name: pins.get(name) for name in CONTRACT if not pins.get(name)} == {}
    schema = yaml.safe_load((REPO / "heliocloud" / "schema" / "daskhub.schema.yaml").read_text())
    chart = schema["properties"]["charts"]["properties"]["dask_gateway"]["default"]["version"]
    project = pyproject_pins()
    # Client (notebooks, workers) == server (the chart) == what the sandbox and tests run.
    assert pins["dask-gateway"] == chart == project["dask-gateway"]
    assert (pins["dask"], pins["distributed"]) == (project["dask"], project["distributed"])
    # The singleuser server speaks the hub's API: same JupyterHub major as the chart's hub (5).
    assert pins["jupyterhub"].split(".")[0] == "5"


@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_are_pinned_install_the_spec_and_run_as_the_notebook_user(dockerfile):
    text = (daskhub.IMAGES_DIR / dockerfile).read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.M)
    assert bases and all(re.search(r":[0-9][\w.-]*$|@sha256:", b) and not b.endswith(":latest") for b in bases)
    assert "-r /opt/heliocloud/requirements.txt" in text and "-c /opt/heliocloud/constraints.txt" in text
    # The jupyterhub chart runs notebooks as uid 1000 (jovyan); homes on EFS are owned by it.
    assert re.findall(r"^USER\s+(\S+)", text, flags=re.M)[-1].split(":")[0] == "1000"


def test_the_tag_follows_the_content_of_the_build_context(tmp_path):
    copy = tmp_path / "images"
    shutil.copytree(daskhub.IMAGES_DIR, copy)
    before = daskhub.image_spec_hash(copy)
    assert before == daskhub.image_spec_hash(daskhub.IMAGES_DIR) and re.fullmatch(r"[0-9a-f]{12}", before)
    (copy / "requirements.txt").write_text((copy / "requirements.txt").read_text() + "tqdm==4.67.1\n")
    assert daskhub.image_spec_hash(copy) != before


def event(request_type: str, tags: dict, old_tags: dict | None = None) -> dict:
    properties = {"ProjectName": "helio-images", "SourceLocation": "assets/abc.zip",
                  "RepositoryUri": "111122223333.dkr.ecr.us-east-1.amazonaws.com/helio-researcher", "ImageTags": tags}
    body = {"RequestType": request_type, "RequestId": "req-1", "ResourceProperties": properties,
            "PhysicalResourceId": properties["RepositoryUri"]}
    if old_tags is not None:
        body["OldResourceProperties"] = {**properties, "ImageTags": old_tags}
    return body


def test_a_build_starts_on_create_and_on_new_tags_only():
    tags = {"cpu": "cpu-aaa", "gpu": "gpu-aaa"}
    request = handler.start_build_request(event("Create", tags))
    assert request["projectName"] == "helio-images" and request["idempotencyToken"] == "req-1"
    assert {v["name"]: v["value"] for v in request["environmentVariablesOverride"]} == {
        "REPOSITORY_URI": "111122223333.dkr.ecr.us-east-1.amazonaws.com/helio-researcher",
        "CPU_TAG": "cpu-aaa", "GPU_TAG": "gpu-aaa"}
    assert handler.start_build_request(event("Update", tags, old_tags=tags)) is None
    assert handler.start_build_request(event("Update", {"cpu": "cpu-bbb", "gpu": "gpu-bbb"}, old_tags=tags))
    assert handler.start_build_request(event("Delete", tags)) is None


BUILD_ARN = "arn:aws:codebuild:us-east-1:111122223333:build/helio-images:0f0e"


@pytest.mark.parametrize("status", ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"])
def test_the_deploy_waits_for_success_and_fails_with_the_builds_status(status):
    build = {"id": "helio-images:0f0e", "arn": BUILD_ARN, "buildStatus": "IN_PROGRESS"}
    assert handler.completion(build, build["id"]) == {"IsComplete": False}
    assert handler.completion({**build, "buildStatus": "SUCCEEDED"}, build["id"]) == {"IsComplete": True}
    failed = {**build, "buildStatus": status,
              "phases": [{"phaseType": "BUILD", "phaseStatus": "FAILED", "contexts": [{"message": "exit 1"}]}]}
    with pytest.raises(handler.BuildFailed, match=rf"ended {status} in phase BUILD \(exit 1\); logs: https://"):
        handler.completion(failed, build["id"])
