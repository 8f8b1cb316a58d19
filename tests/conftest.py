"""Shared fixtures: one synth of the default app per session, and a real moto server."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from heliocloud.commands.synth import synthesize
from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS, MotoServer

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@pytest.fixture(scope="session")
def default_templates(tmp_path_factory) -> dict[str, dict]:
    """{stack name: template} of the default instance.yaml, synthesized once (with cdk-nag)."""
    return synthesize(str(REPO / "instance.yaml"), tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def default_cdk_out(default_templates, tmp_path_factory) -> Path:
    """The cloud assembly folder behind ``default_templates``."""
    return next(p for p in tmp_path_factory.getbasetemp().glob("cdk.out*") if (p / "manifest.json").exists())


@pytest.fixture(scope="session")
def moto_server():
    """A moto_server subprocess on 127.0.0.1 for the whole session; boto3 is pointed at it."""
    saved = dict(os.environ)
    with MotoServer() as server:
        os.environ.update(SANDBOX_CREDENTIALS)
        os.environ.update({"AWS_ENDPOINT_URL": server.url, "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"})
        yield server
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def moto(moto_server):
    """The session's moto server, emptied before the test."""
    moto_server.reset()
    return moto_server
