"""Sandbox part: the registry's buckets, S3→SQS notifications and state table in moto, and the
indexer consuming the queue with the same handler code as the Lambda.

Two pollers drain the queue continuously (a moto queue left to grow slows S3 uploads sharply);
each gathers messages for a short batching window like the Lambda event source does, then hands
the batch to ``Indexer.handle`` and deletes what it did not report as failed. Failed messages
come back after the visibility timeout and, past ``maxReceiveCount``, move to the DLQ.
"""
from __future__ import annotations

import json
import threading
import time

from hc_registry.indexer import Indexer
from hc_registry.rules import BucketRules
from hc_registry.state import StateStore

from heliocloud.registry_config import bucket_rules, queue_name, state_table_name
from heliocloud.sandbox import Sandbox

POLLERS = 2
BATCH_WINDOW_SECONDS = 2.0
MAX_BATCH = 1000
VISIBILITY_TIMEOUT = 30
MAX_RECEIVE_COUNT = 3


def provision(*, s3, sqs, dynamodb, buckets: dict[str, BucketRules], table: str, queue: str,
              max_receive_count: int = MAX_RECEIVE_COUNT, visibility_timeout: int = VISIBILITY_TIMEOUT) -> str:
    """Create the state table, the queue with its DLQ, and the buckets with S3→SQS notifications.
    Returns the queue URL."""
    dynamodb.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    )
    dlq_url = sqs.create_queue(QueueName=f"{queue}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(QueueName=queue, Attributes={
        "VisibilityTimeout": str(visibility_timeout),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    for rules in buckets.values():
        s3.create_bucket(Bucket=rules.name)
        if rules.requester_pays:
            s3.put_bucket_request_payment(Bucket=rules.name, RequestPaymentConfiguration={"Payer": "Requester"})
        s3.put_bucket_notification_configuration(Bucket=rules.name, NotificationConfiguration={
            "QueueConfigurations": [{"Id": "registry", "QueueArn": queue_arn,
                                     "Events": ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]}],
        })
    return queue_url


class Poller:
    """Receive → batch → ``indexer.handle`` → delete, until ``stopping`` is set."""

    def __init__(self, sqs, queue_url: str, indexer: Indexer, stopping: threading.Event, *,
                 window: float = BATCH_WINDOW_SECONDS, max_batch: int = MAX_BATCH):
        self.sqs, self.queue_url, self.indexer, self.stopping = sqs, queue_url, indexer, stopping
        self.window, self.max_batch = window, max_batch

    def run(self) -> None:
        while not self.stopping.is_set():
            batch = self.gather()
            if batch:
                self.process(batch)

    def gather(self) -> list[dict]:
        """Messages of one batch: from the first message, keep receiving for ``window`` seconds
        (or until ``max_batch``), as the Lambda event source's batching window does."""
        batch: list[dict] = []
        deadline = None
        while len(batch) < self.max_batch and not self.stopping.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1 if deadline is None else 0,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not messages:
                if deadline is None:
                    break
                time.sleep(0.1)
                continue
            batch += messages
            if deadline is None:
                deadline = time.monotonic() + self.window
        return batch

    def process(self, batch: list[dict]) -> dict:
        event = {"Records": [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                              "attributes": m.get("Attributes", {}), "eventSource": "aws:sqs"} for m in batch]}
        response = self.indexer.handle(event)
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start:start + 10])])
        return response


def start(sandbox: Sandbox) -> None:
    config = sandbox.config
    buckets = bucket_rules(config, sandbox.region)
    table, queue = state_table_name(config), queue_name(config)
    s3 = sandbox.client("s3")
    queue_url = provision(s3=s3, sqs=sandbox.client("sqs"), dynamodb=sandbox.client("dynamodb"), buckets=buckets,
                          table=table, queue=queue)
    store = StateStore(sandbox.client("dynamodb"), table)
    indexer = Indexer(buckets, s3=s3, store=store)
    for name in buckets:
        indexer.publish_catalog(name)  # an empty but valid catalog.json from the start
    for n in range(POLLERS):
        poller = Poller(sandbox.client("sqs"), queue_url, indexer, sandbox.stopping)
        sandbox.run_in_background(poller.run, name=f"registry-indexer-{n}")
    sandbox.endpoints["registry"] = {"buckets": sorted(buckets), "queue": queue_url, "table": table}
