"""Sandbox part: the instance's HelioDataRegistry.json, so that ``CatalogRegistry()`` (which
reads ``ROOT_CATALOG_REGISTRY_URL``) finds the sandbox's buckets as it finds a HelioCloud's.

The document lists every registry bucket, private ones included: only the sandbox's own users
read it (the federation file an admin publishes lists public buckets only). It is served by the
sandbox's S3 as a public-read object, fetched with a plain unauthenticated GET, as the client
fetches the real one over HTTPS: no server of its own to run. It lives in a small bucket of its
own, not in a data bucket, whose indexer would report it as a stray upload in rejects.csv.
"""
from __future__ import annotations

from hc_registry.catalog import federation_document, to_json

from heliocloud.registry_config import bucket_rules
from heliocloud.sandbox import Sandbox

KEY = "HelioDataRegistry.json"


def bucket_name(sandbox: Sandbox) -> str:
    return f"{sandbox.config.name}-catalog-registry"


def start(sandbox: Sandbox) -> str:
    """Publish the document; returns its URL (also ``endpoints["catalog_registry_url"]``)."""
    buckets = bucket_rules(sandbox.config, sandbox.region)
    document = federation_document(buckets.values(), public_only=False)
    s3, bucket = sandbox.client("s3"), bucket_name(sandbox)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key=KEY, Body=to_json(document), ContentType="application/json", ACL="public-read")
    url = f"{sandbox.aws_url}/{bucket}/{KEY}"
    sandbox.endpoints["catalog_registry_url"] = url
    return url
