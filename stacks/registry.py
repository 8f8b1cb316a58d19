"""Registry: the data buckets and the indexer that keeps their CloudCatalog index exact.

PUT/DELETE/lifecycle expiration in a data bucket → S3 event → SQS (DLQ + alarm) → indexer Lambda
(batched, partial batch failures) → <index_prefix><id>_YYYY.csv + catalog.json, with per-object
state and per-partition leases in DynamoDB so that concurrent batches can never lose or double a row.
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import custom_resources as cr
from constructs import Construct
from hc_registry.indexer import NOTIFIED_EVENTS

from heliocloud.config import InstanceConfig
from heliocloud.registry_config import registry_rules, state_table_name
from stacks.security import acknowledge

LAMBDA_ASSET = Path(__file__).resolve().parents[1] / "lambdas" / "registry"
INDEXER_TIMEOUT_SECONDS = 120
LEASE_SECONDS = 180  # > the function timeout: a holder is always dead before its lease runs out
MAX_RECEIVE_COUNT = 5
# Construct id CDK gives the singleton Lambda behind every AwsCustomResource of a stack.
_AWS_CUSTOM_RESOURCE_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"


class DataBuckets(Construct):
    """One S3 bucket per ``registry.buckets[]`` entry, plus the bucket their access logs go to."""

    def __init__(self, scope: Construct, construct_id: str, *, buckets: list[dict]) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = s3.Bucket(
            self, "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the S3 logging service writes only SSE-S3
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # Log delivery uses the LogDeliveryWrite ACL unless cdk.json turns on
            # @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy; ACLs need this ownership mode.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(365))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(self.access_logs, "AwsSolutions-S1",
                    "This is the access-log bucket itself; logging its own writes would log forever")
        self.buckets: dict[str, s3.Bucket] = {}
        for spec in buckets:
            self.buckets[spec["name"]] = self._bucket(spec)

    def _bucket(self, spec: dict) -> s3.Bucket:
        name = spec["name"]
        public = spec["public"]
        bucket = s3.Bucket(
            self, f"Bucket-{name}",
            bucket_name=name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            versioned=spec["versioning"],
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            block_public_access=s3.BlockPublicAccess(
                block_public_acls=True, ignore_public_acls=True, block_public_policy=False,
                restrict_public_buckets=False,
            ) if public else s3.BlockPublicAccess.BLOCK_ALL,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{name}/",
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        if public:
            # Open data: anyone may read and list, nothing else (ACLs stay blocked).
            bucket.add_to_resource_policy(iam.PolicyStatement(
                sid="PublicRead", principals=[iam.AnyPrincipal()], actions=["s3:GetObject"],
                resources=[bucket.arn_for_objects("*")]))
            bucket.add_to_resource_policy(iam.PolicyStatement(
                sid="PublicList", principals=[iam.AnyPrincipal()], actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn]))
            acknowledge(bucket, "AwsSolutions-S2",
                        f"{name} is configured public in instance.yaml: open data readable by anyone (read and list only)")
        if spec["requester_pays"]:
            # CloudFormation has no property for request payment; one SDK call sets it.
            payer = cr.AwsCustomResource(
                self, f"RequesterPays-{name}",
                on_update=cr.AwsSdkCall(
                    service="S3", action="putBucketRequestPayment",
                    parameters={"Bucket": name, "RequestPaymentConfiguration": {"Payer": "Requester"}},
                    physical_resource_id=cr.PhysicalResourceId.of(f"{name}-requester-pays"),
                ),
                policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
                    actions=["s3:PutBucketRequestPayment"], resources=[bucket.bucket_arn])]),
                install_latest_aws_sdk=False,
            )
            payer.node.add_dependency(bucket)
            provider = cdk.Stack.of(self).node.find_child(_AWS_CUSTOM_RESOURCE_PROVIDER)
            acknowledge(provider, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",  # noqa: E501
                        "CDK's shared AwsCustomResource provider only writes its own logs with this policy; it makes "
                        "one S3 call at deploy time")
        return bucket


class EventQueue(Construct):
    """The S3 event queue, its dead-letter queue and an alarm as soon as anything lands there."""

    def __init__(self, scope: Construct, construct_id: str, *, visibility_timeout: cdk.Duration) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self, "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
        )
        acknowledge(self.dead_letters, "AwsSolutions-SQS3",
                    "This queue is the dead-letter queue of the S3 event queue; it has no queue behind it")
        self.queue = sqs.Queue(
            self, "Events",
            encryption=sqs.QueueEncryption.SQS_MANAGED,  # S3 can deliver to SSE-SQS queues without a key policy
            enforce_ssl=True,
            visibility_timeout=visibility_timeout,
            retention_period=cdk.Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT),
        )
        self.alarm = cloudwatch.Alarm(
            self, "DeadLettersAlarm",
            alarm_description="S3 events the registry indexer could not process: inspect the DLQ, then "
                              "`heliocloud registry verify|rebuild BUCKET`",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=cdk.Duration.minutes(5), statistic="Maximum"),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )


class IndexerFunction(Construct):
    """The indexer Lambda and its state table; the rules from instance.yaml ship in its asset."""

    def __init__(self, scope: Construct, construct_id: str, *, rules: dict, table_name: str,
                 queue: sqs.IQueue) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self, "State",
            table_name=table_name,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            time_to_live_attribute="expires_at",  # tombstones of deleted objects
            # Derived state: `heliocloud registry rebuild` restores the index from the buckets.
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH,
                                       removal_policy=cdk.RemovalPolicy.DESTROY)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description="Registry indexer: reads S3 events, writes the index files")
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[self.log_group.log_group_arn]))
        self.function = lambda_.Function(
            self, "Function",
            description="Keeps the CloudCatalog index of the data buckets exact",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler="hc_registry.handler.handle",
            code=lambda_.Code.from_asset(_staged_asset(rules)),
            timeout=cdk.Duration.seconds(INDEXER_TIMEOUT_SECONDS),
            memory_size=1024,  # a year of 4-minute images is a 17 MB CSV, merged in memory
            role=self.role,
            log_group=self.log_group,
            environment={"REGISTRY_TABLE": self.table.table_name, "LEASE_SECONDS": str(LEASE_SECONDS)},
        )
        acknowledge(self.function, "AwsSolutions-L1",
                    "The indexer is pinned to python3.12, the runtime its code and tests are checked against")
        self.function.add_event_source(event_sources.SqsEventSource(
            queue,
            batch_size=1000,
            max_batching_window=cdk.Duration.seconds(10),  # fewer, larger batches: writes scale with partitions
            report_batch_item_failures=True,
            # Any concurrency is exact (leases serialise each CSV); a cap bounds lease contention.
            max_concurrency=5,
        ))
        self.table.grant_read_write_data(self.role)


def _staged_asset(rules: dict) -> str:
    """The Lambda asset: lambdas/registry plus this instance's rules as registry_rules.json."""
    stage = Path(tempfile.mkdtemp(prefix="hc-registry-asset-"))
    atexit.register(shutil.rmtree, stage, ignore_errors=True)
    shutil.copytree(LAMBDA_ASSET, stage, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (stage / "registry_rules.json").write_text(json.dumps(rules, indent=1, sort_keys=True))
    return str(stage)


class RegistryStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InstanceConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"HelioCloud {config.name}: data buckets and registry",
                         **kwargs)
        specs = config.registry["buckets"]
        data = DataBuckets(self, "Data", buckets=specs)
        self.buckets = data.buckets
        events = EventQueue(self, "Events", visibility_timeout=cdk.Duration.seconds(6 * INDEXER_TIMEOUT_SECONDS))
        indexer = IndexerFunction(self, "Indexer", rules=registry_rules(config),
                                  table_name=state_table_name(config), queue=events.queue)

        bucket_arns = [f"arn:{cdk.Aws.PARTITION}:s3:::{spec['name']}" for spec in specs]
        if bucket_arns:
            events.queue.add_to_resource_policy(iam.PolicyStatement(
                sid="S3Events", principals=[iam.ServicePrincipal("s3.amazonaws.com")], actions=["sqs:SendMessage"],
                resources=[events.queue.queue_arn],
                conditions={"ArnLike": {"aws:SourceArn": bucket_arns},
                            "StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            ))
        for spec in specs:
            bucket = self.buckets[spec["name"]]
            self._notify(bucket, events.queue)
            self._grant_index_writes(indexer.role, bucket, spec["index_prefix"])
            if spec["versioning"]:
                # After a version is deleted, the indexer lists the key's versions to see which is
                # current now: names and sizes only, never the data.
                indexer.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucketVersions"],
                                                               resources=[bucket.bucket_arn]))

        for spec in specs:
            cdk.CfnOutput(self, f"BucketOf{_camel(spec['name'])}", value=self.buckets[spec["name"]].bucket_name,
                          description=f"data bucket; catalog at s3://{spec['name']}/catalog.json")
        cdk.CfnOutput(self, "EventQueueUrl", value=events.queue.queue_url, description="S3 events for the indexer")
        cdk.CfnOutput(self, "DeadLetterQueueUrl", value=events.dead_letters.queue_url,
                      description="S3 events the indexer gave up on (alarmed)")
        cdk.CfnOutput(self, "StateTableName", value=indexer.table.table_name, description="indexer state")

    @staticmethod
    def _notify(bucket: s3.Bucket, queue: sqs.Queue) -> None:
        """Every created, removed or lifecycle-expired object → the queue. Set on the bucket
        resource itself (no custom-resource Lambda); S3 checks the queue policy at creation,
        hence the dependency."""
        cfn = bucket.node.default_child
        cfn.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(queue_configurations=[
            s3.CfnBucket.QueueConfigurationProperty(event=event, queue=queue.queue_arn) for event in NOTIFIED_EVENTS
        ])
        cfn.node.add_dependency(queue)

    @staticmethod
    def _grant_index_writes(role: iam.Role, bucket: s3.Bucket, index_prefix: str) -> None:
        """The indexer reads and writes its index files and catalog.json, nothing else."""
        role.add_to_policy(iam.PolicyStatement(
            actions=["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
            resources=[bucket.arn_for_objects(f"{index_prefix}*"), bucket.arn_for_objects("catalog.json")]))
        # ListBucket turns a missing index file into 404 instead of 403.
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
        stack = cdk.Stack.of(bucket)
        logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))
        acknowledge(role, f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{index_prefix}*]",
                    "Index files are named <id>_YYYY.csv as years and datasets appear; the grant stops at the "
                    "index folder, never the data")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace(".", "-").split("-"))
