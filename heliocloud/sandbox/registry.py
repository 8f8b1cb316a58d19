"""Sandbox part: the registry's buckets, S3→SQS notifications and state table in moto, and the
indexer consuming the queue with the same handler code as the Lambda.

Eight pollers drain the queue continuously (moto's SQS receive slows with every message queued,
so a backlog must never build up: with fewer pollers an 8-thread upload burst outruns them):
each records the changes of what it receives (``Indexer.record``, step one of the Lambda's
``handle``) and deletes those messages; a publisher merges the touched partitions once per
batching window (``Indexer.publish``, step two), as the Lambda does once per batch. Failed
messages come back after the visibility timeout and, past ``maxReceiveCount``, move to the DLQ.
"""
from __future__ import annotations

import json
import threading

from hc_registry.indexer import Indexer
from hc_registry.rules import BucketRules
from hc_registry.state import StateStore

from heliocloud.registry_config import bucket_rules, queue_name, state_table_name
from heliocloud.sandbox import Sandbox

POLLERS = 8
BATCH_WINDOW_SECONDS = 2.0
VISIBILITY_TIMEOUT = 30
MAX_RECEIVE_COUNT = 3


def provision(*, s3, sqs, dynamodb, buckets: dict[str, BucketRules], table: str, queue: str,
              max_receive_count: int = MAX_RECEIVE_COUNT, visibility_timeout: int = VISIBILITY_TIMEOUT) -> str:
    """Create the state table, the queue with its DLQ, and the buckets with S3→SQS notifications.
    Returns the queue URL."""
    from hc_registry.indexer import NOTIFIED_EVENTS

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
        if rules.versioned:
            s3.put_bucket_versioning(Bucket=rules.name, VersioningConfiguration={"Status": "Enabled"})
        if rules.requester_pays:
            s3.put_bucket_request_payment(Bucket=rules.name, RequestPaymentConfiguration={"Payer": "Requester"})
        # The stack's events; moto accepts the lifecycle ones but never sends them (it runs no rules).
        s3.put_bucket_notification_configuration(Bucket=rules.name, NotificationConfiguration={
            "QueueConfigurations": [{"Id": "registry", "QueueArn": queue_arn, "Events": list(NOTIFIED_EVENTS)}],
        })
    return queue_url


class Publisher:
    """Publishes the partitions the pollers touched, once per batching window: the sandbox's
    equivalent of the Lambda's batching window, so index writes scale with partitions touched."""

    def __init__(self, indexer: Indexer, stopping: threading.Event, *, window: float = BATCH_WINDOW_SECONDS):
        self.indexer, self.stopping, self.window = indexer, stopping, window
        self._lock = threading.Lock()
        self._touched: dict[tuple[str, str], set[str]] = {}

    def add(self, touching: dict[tuple[str, str], set[str]]) -> None:
        with self._lock:
            for partition, ids in touching.items():
                self._touched.setdefault(partition, set()).update(ids)

    def flush(self) -> None:
        with self._lock:
            touched, self._touched = self._touched, {}
        if not touched:
            return
        failed = self.indexer.publish(touched)
        # The changes are durable in the state table: retry the partitions on the next window.
        self.add({p: ids for p, ids in touched.items() if ids & failed})

    def run(self) -> None:
        while not self.stopping.wait(self.window):
            self.flush()
        self.flush()


class Poller:
    """Receive → ``indexer.record`` → delete → hand the touched partitions to the publisher.

    A message is deleted as soon as its change is recorded in the state table (with its dirty
    marker), which is what makes it safe to publish later; keeping the queue short also keeps
    moto's SQS fast. A message ``record`` reports as failed stays, comes back after the
    visibility timeout and, past ``maxReceiveCount``, lands in the DLQ."""

    def __init__(self, sqs, queue_url: str, indexer: Indexer, publisher: Publisher, stopping: threading.Event):
        self.sqs, self.queue_url, self.indexer, self.publisher, self.stopping = (
            sqs, queue_url, indexer, publisher, stopping)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.poll_once(wait=1)

    def poll_once(self, *, wait: int = 0) -> int:
        """One receive; returns how many messages it got."""
        messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                            WaitTimeSeconds=wait).get("Messages", [])
        if messages:
            self.process(messages)
        return len(messages)

    def process(self, messages: list[dict]) -> set[str]:
        records = [{"messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
                    "eventSource": "aws:sqs"} for m in messages]
        failed, touching = self.indexer.record(records)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        self.publisher.add(touching)
        return failed


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
    publisher = Publisher(indexer, sandbox.stopping)
    sandbox.run_in_background(publisher.run, name="registry-publisher")
    for n in range(POLLERS):
        poller = Poller(sandbox.client("sqs"), queue_url, indexer, publisher, sandbox.stopping)
        sandbox.run_in_background(poller.run, name=f"registry-poller-{n}")
    sandbox.endpoints["registry"] = {"buckets": sorted(buckets), "queue": queue_url, "table": table}
