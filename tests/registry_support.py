"""Shared set-up of the registry tests: the default instance's registry provisioned in moto,
and a way to run the sandbox's pollers until the queue is drained and the index published."""
from __future__ import annotations

import copy
import itertools
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import boto3
from hc_registry.indexer import Indexer
from hc_registry.rules import BucketRules
from hc_registry.state import StateStore

from heliocloud.config import InstanceConfig, load, validate
from heliocloud.registry_config import bucket_rules, queue_name, state_table_name
from heliocloud.sandbox.registry import Poller, Publisher, provision

REPO = Path(__file__).resolve().parents[1]
BUCKET = "helio-data-example"
_ids = itertools.count()


def aia_key(stamp: str) -> str:
    """``20241231T235800`` → the AIA 94 Å key of that time."""
    return f"sdo/aia/{stamp[:8]}/0094/sdo_aia_h2_{stamp}_0094_v1.fits"


def mms_key(stamp: str) -> str:
    """``20241231235959`` → the MMS1 FGM burst key of that time."""
    return f"mms/mms1/fgm/brst/l2/{stamp[:4]}/{stamp[4:6]}/{stamp[6:8]}/mms1_fgm_brst_l2_{stamp}_v4.18.0.cdf"


def s3_message(key: str, *, name: str = "ObjectCreated:Put", size: int | None = 100, sequencer: str | None = None,
               time: str = "2026-01-01T00:00:00.000Z", bucket: str = BUCKET, quoted: str | None = None,
               version_id: str | None = None) -> dict:
    """An SQS record holding one S3 event, as the Lambda receives it (keys URL-encoded), in the
    shape S3 documents: lifecycle events are version 2.3 from s3.amazonaws.com and carry no size;
    ``versionId`` only on versioned buckets."""
    from urllib.parse import quote_plus

    obj = {"key": quoted or quote_plus(key)}
    if size is not None:
        obj.update(size=size, eTag="0")
    if version_id:
        obj["versionId"] = version_id
    if sequencer:
        obj["sequencer"] = sequencer
    lifecycle = name.startswith("Lifecycle")
    record = {"eventVersion": "2.3" if lifecycle else "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
              "eventTime": time, "eventName": name,
              "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                     "object": obj}}
    if lifecycle:
        record["userIdentity"] = {"principalId": "s3.amazonaws.com"}
    return {"messageId": f"m{next(_ids)}", "body": json.dumps({"Records": [record]})}


def moto_event_time() -> str:
    """Now, as moto stamps its events (milliseconds). Moto sends no sequencer, so the event time
    orders a key's events: an event stamped this way is later than every event moto sent before
    (the pause keeps it out of the same millisecond)."""
    from datetime import UTC, datetime
    from time import sleep

    sleep(0.005)
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Registry:
    config: InstanceConfig
    rules: dict[str, BucketRules]
    s3: object
    sqs: object
    ddb: object
    queue_url: str
    indexer: Indexer
    publisher: Publisher
    poller: Poller

    @property
    def bucket(self) -> BucketRules:
        return self.rules[BUCKET]

    def drain(self) -> None:
        """Poll until the queue is empty, then publish (one batching window's worth)."""
        empty = 0
        while empty < 2:
            empty = empty + 1 if self.poller.poll_once() == 0 else 0
        self.publisher.flush()
        # Publishing wrote index objects, whose own events are on the queue: consume them too.
        while self.poller.poll_once():
            continue

    def handle(self, *messages: dict) -> dict:
        return self.indexer.handle({"Records": list(messages)})

    def send(self, message: dict) -> None:
        """Put an S3 event on the real queue, as S3 would (for what moto does not notify)."""
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=message["body"])

    def read(self, key: str) -> str | None:
        try:
            return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()
        except self.s3.exceptions.NoSuchKey:
            return None

    def catalog(self) -> dict:
        return json.loads(self.read("catalog.json"))

    def rows(self, dataset: str, year: int) -> list[list[str]]:
        text = self.read(f"index/{dataset}_{year}.csv")
        return [] if text is None else [line.split(",") for line in text.splitlines()[1:]]

    def new_indexer(self, s3=None) -> Indexer:
        return Indexer(self.rules, s3=s3 or self.s3, store=StateStore(self.ddb, state_table_name(self.config)))


def make_registry(*, visibility_timeout: int = 30, max_receive_count: int = 3, versioning: bool = False) -> Registry:
    """The default instance's registry in moto; ``versioning`` turns it on for its bucket."""
    config = load(REPO / "instance.yaml")
    if versioning:
        data = copy.deepcopy(config.data)
        data["registry"]["buckets"][0]["versioning"] = True
        config = InstanceConfig(validate(data))
    rules = bucket_rules(config, "us-east-1")
    s3, sqs, ddb = boto3.client("s3"), boto3.client("sqs"), boto3.client("dynamodb")
    queue_url = provision(s3=s3, sqs=sqs, dynamodb=ddb, buckets=rules, table=state_table_name(config),
                          queue=queue_name(config), visibility_timeout=visibility_timeout,
                          max_receive_count=max_receive_count)
    indexer = Indexer(rules, s3=s3, store=StateStore(ddb, state_table_name(config)))
    stopping = threading.Event()
    publisher = Publisher(indexer, stopping)
    poller = Poller(sqs, queue_url, indexer, publisher, stopping)
    return Registry(config, rules, s3, sqs, ddb, queue_url, indexer, publisher, poller)
