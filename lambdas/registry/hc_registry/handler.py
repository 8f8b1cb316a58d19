"""Lambda entry point of the indexer (SQS event source with ReportBatchItemFailures).

The dataset rules travel inside the asset as ``registry_rules.json`` (written at synth from
instance.yaml); the state table's name comes from the environment.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import boto3

from hc_registry.indexer import Indexer
from hc_registry.rules import load_rules
from hc_registry.state import StateStore

RULES_FILE = Path(__file__).resolve().parent.parent / "registry_rules.json"
logging.getLogger("hc_registry").setLevel(logging.INFO)
_indexer: Indexer | None = None


def build_indexer() -> Indexer:
    document = json.loads(Path(os.environ.get("REGISTRY_RULES", RULES_FILE)).read_text())
    document["region"] = document.get("region") or os.environ.get("AWS_REGION")
    store = StateStore(boto3.client("dynamodb"), os.environ["REGISTRY_TABLE"],
                       lease_seconds=float(os.environ.get("LEASE_SECONDS", "180")))
    return Indexer(load_rules(document), s3=boto3.client("s3"), store=store)


# Stop merging rounds this long before the function would time out.
TIMEOUT_MARGIN_SECONDS = 20


def handle(event, context=None):
    global _indexer
    if _indexer is None:
        _indexer = build_indexer()
    deadline = None
    if context is not None:
        deadline = time.time() + context.get_remaining_time_in_millis() / 1000 - TIMEOUT_MARGIN_SECONDS
    return _indexer.handle(event, deadline=deadline)
