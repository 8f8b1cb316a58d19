"""Registry stack assertions: buckets, notifications, DLQ + alarm, TLS-only, public access only
where configured, retention, access logs, encryption, indexer wiring."""
from __future__ import annotations

import copy
import json

import aws_cdk as cdk
import pytest
import yaml
from aws_cdk.assertions import Match, Template

from heliocloud.config import InstanceConfig, validate
from stacks.registry import RegistryStack
from stacks.security import add_security_checks
from tests.registry_support import BUCKET, REPO

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def template(default_templates) -> Template:
    return Template.from_json(default_templates["helio-Registry"])


@pytest.fixture(scope="module")
def public_template() -> Template:
    """A two-bucket instance: the first public with requester pays and versioning, the second
    private. Synthesized with cdk-nag, which fails on any unacknowledged finding."""
    data = yaml.safe_load((REPO / "instance.yaml").read_text())
    first = data["registry"]["buckets"][0]
    first.update(public=True, requester_pays=True, versioning=True)
    second = copy.deepcopy(first)
    second.update(name="helio-private-example", public=False, requester_pays=False, versioning=False,
                  index_prefix="catalogs/")
    data["registry"]["buckets"].append(second)
    config = InstanceConfig(validate(data))
    app = cdk.App()
    stack = RegistryStack(app, "helio-Registry", config=config)
    add_security_checks(app)
    return Template.from_stack(stack)


def buckets(template: Template) -> dict[str, dict]:
    return {r["Properties"].get("BucketName", logical): r for logical, r in
            template.find_resources("AWS::S3::Bucket").items()}


def test_data_bucket_is_private_encrypted_logged_and_retained(template):
    data = buckets(template)[BUCKET]
    props = data["Properties"]
    assert data["DeletionPolicy"] == "Retain" and data["UpdateReplacePolicy"] == "Retain"
    assert props["PublicAccessBlockConfiguration"] == {"BlockPublicAcls": True, "BlockPublicPolicy": True,
                                                       "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert props["LoggingConfiguration"]["LogFilePrefix"] == f"{BUCKET}/"
    assert "VersioningConfiguration" not in props


def test_every_bucket_policy_denies_plain_http(template, public_template):
    for tmpl in (template, public_template):
        policies = tmpl.find_resources("AWS::S3::BucketPolicy")
        assert len(policies) == len(buckets(tmpl))
        for policy in policies.values():
            statements = policy["Properties"]["PolicyDocument"]["Statement"]
            assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                       for s in statements)
    for queue_policy in template.find_resources("AWS::SQS::QueuePolicy").values():
        statements = queue_policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
                   for s in statements)


def test_public_read_only_where_configured(template, public_template):
    def public_statements(tmpl):
        return [s for p in tmpl.find_resources("AWS::S3::BucketPolicy").values()
                for s in p["Properties"]["PolicyDocument"]["Statement"]
                if s["Effect"] == "Allow" and s.get("Principal") == {"AWS": "*"}]

    assert public_statements(template) == []
    opened = public_statements(public_template)
    assert sorted(s["Action"] for s in opened) == ["s3:GetObject", "s3:ListBucket"]
    props = buckets(public_template)
    assert props[BUCKET]["Properties"]["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": False, "IgnorePublicAcls": True, "RestrictPublicBuckets": False}
    assert props[BUCKET]["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["helio-private-example"]["Properties"]["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"]
    payer = public_template.find_resources("Custom::AWS")
    assert len(payer) == 1
    assert "putBucketRequestPayment" in json.dumps(payer)


def test_created_removed_and_expired_events_go_to_the_queue(template):
    queue_id = next(k for k, r in template.find_resources("AWS::SQS::Queue").items() if "RedrivePolicy" in r["Properties"])
    data = buckets(template)[BUCKET]
    assert data["Properties"]["NotificationConfiguration"]["QueueConfigurations"] == [
        {"Event": "s3:ObjectCreated:*", "Queue": {"Fn::GetAtt": [queue_id, "Arn"]}},
        {"Event": "s3:ObjectRemoved:*", "Queue": {"Fn::GetAtt": [queue_id, "Arn"]}},
        {"Event": "s3:LifecycleExpiration:*", "Queue": {"Fn::GetAtt": [queue_id, "Arn"]}},
    ]
    assert queue_id in data["DependsOn"] or any(queue_id in d for d in data["DependsOn"])
    template.has_resource_properties("AWS::SQS::QueuePolicy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": "sqs:SendMessage", "Principal": {"Service": "s3.amazonaws.com"},
                           "Condition": Match.object_like({"ArnLike": {"aws:SourceArn": Match.any_value()}})})])}})


def test_queue_has_a_dlq_with_an_alarm(template):
    queues = template.find_resources("AWS::SQS::Queue")
    events = next(r for r in queues.values() if "RedrivePolicy" in r["Properties"])
    assert events["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5
    assert events["Properties"]["SqsManagedSseEnabled"] is True
    dlq_id = events["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert queues[dlq_id]["Properties"]["MessageRetentionPeriod"] == 14 * 86400
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "ApproximateNumberOfMessagesVisible", "Threshold": 0,
        "ComparisonOperator": "GreaterThanThreshold",
        "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]})


def test_indexer_lambda_reports_partial_batch_failures(template):
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": "python3.12", "Handler": "hc_registry.handler.handle", "Timeout": 120,
        "Environment": {"Variables": {"REGISTRY_TABLE": Match.any_value(), "LEASE_SECONDS": "180"}}})
    template.has_resource_properties("AWS::Lambda::EventSourceMapping", {
        "BatchSize": 1000, "MaximumBatchingWindowInSeconds": 10, "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ScalingConfig": {"MaximumConcurrency": 5}})
    queue = next(r for r in template.find_resources("AWS::SQS::Queue").values() if "RedrivePolicy" in r["Properties"])
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * 120  # AWS's advice for Lambda event sources


def test_state_table_and_index_only_grants(template, public_template):
    template.has_resource_properties("AWS::DynamoDB::Table", {
        "TableName": "helio-registry-state", "BillingMode": "PAY_PER_REQUEST",
        "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True}})
    for tmpl, prefixes in ((template, ["index/"]), (public_template, ["index/", "catalogs/"])):
        policy = json.dumps(tmpl.find_resources("AWS::IAM::Policy"))
        for prefix in prefixes:
            assert f'"/{prefix}*"' in policy
        assert '"/*"' not in policy and '"Resource": "*"' not in policy


def test_only_versioned_buckets_let_the_indexer_list_versions(template, public_template):
    """The indexer lists a key's versions after a version is deleted, on versioned buckets only."""
    def listed(tmpl):
        statements = [s for p in tmpl.find_resources("AWS::IAM::Policy").values()
                      for s in p["Properties"]["PolicyDocument"]["Statement"] if s["Action"] == "s3:ListBucketVersions"]
        logical = {k: r["Properties"].get("BucketName") for k, r in tmpl.find_resources("AWS::S3::Bucket").items()}
        return sorted(logical[s["Resource"]["Fn::GetAtt"][0]] for s in statements)

    assert listed(template) == []
    assert listed(public_template) == [BUCKET]  # versioned; helio-private-example is not


def test_outputs_name_what_operators_need(template):
    outputs = template.find_outputs("*")
    assert {"EventQueueUrl", "DeadLetterQueueUrl", "StateTableName"} <= set(outputs)
    assert any(k.startswith("BucketOf") for k in outputs)


def test_rules_ship_in_the_lambda_asset(default_cdk_out, template):
    function = next(iter(template.find_resources("AWS::Lambda::Function").values()))
    asset = "asset." + function["Properties"]["Code"]["S3Key"].removesuffix(".zip")
    rules = json.loads((default_cdk_out / asset / "registry_rules.json").read_text())
    assert [d["id"] for d in rules["buckets"][0]["datasets"]] == ["aia_0094", "mms1_fgm_brst_l2", "goes16_xrsf_l2_flx1s"]
    assert (default_cdk_out / asset / "hc_registry" / "handler.py").exists()
