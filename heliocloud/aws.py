"""boto3 clients that honour AWS_ENDPOINT_URL (sandbox, moto) and the instance's region."""
from __future__ import annotations

import os

import boto3
from botocore.config import Config

# Standard retry mode backs off on throttling; adaptive would also rate-limit the client.
RETRIES = Config(retries={"max_attempts": 8, "mode": "standard"})


def client(service: str, *, endpoint_url: str | None = None, region: str | None = None):
    """A boto3 client; ``endpoint_url`` (or $AWS_ENDPOINT_URL, which boto3 reads itself) points it
    at a local server such as the sandbox's moto."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    kwargs = {"region_name": region, "config": RETRIES}
    if endpoint_url:
        kwargs["endpoint_url"] = endpoint_url
    return boto3.client(service, **kwargs)
