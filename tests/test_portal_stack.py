"""Portal stack assertions: authorizer on every route, the actor role's tag conditions, no open
SSH, retained PITR tables, CloudFront with OAC, HTTPS and security headers."""
from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Template

from hc_portal.api import ROUTES
from heliocloud.config import InstanceConfig, validate
from stacks.auth import AuthStack
from stacks.network import NetworkStack
from stacks.portal import PortalStack

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def template(default_templates) -> dict:
    return default_templates["helio-Portal"]


def resources(template: dict, kind: str) -> dict:
    return {k: r for k, r in template["Resources"].items() if r["Type"] == kind}


@pytest.fixture(scope="module")
def custom_template() -> dict:
    """A portal with SSH CIDRs, a data bucket and a fixed AMI, synthesized in-process."""
    data = validate({"instance": {"name": "lab"}, "portal": {
        "ssh_cidrs": ["192.0.2.0/24"],
        "images": [{"name": "Lab image", "ami": "ami-0123456789abcdef0", "os": "rocky"}]}})
    data["registry"]["buckets"] = [{"name": "lab-helio-data"}]
    config = InstanceConfig(data)
    app = cdk.App()
    network = NetworkStack(app, "lab-Network", config=config)
    auth = AuthStack(app, "lab-Auth", config=config)
    return Template.from_stack(PortalStack(app, "lab-Portal", config=config, network=network, auth=auth)).to_json()


def test_every_route_has_the_cognito_jwt_authorizer(template):
    routes = resources(template, "AWS::ApiGatewayV2::Route")
    assert sorted(r["Properties"]["RouteKey"] for r in routes.values()) == sorted(ROUTES)
    [(auth_id, authorizer)] = resources(template, "AWS::ApiGatewayV2::Authorizer").items()
    assert authorizer["Properties"]["AuthorizerType"] == "JWT"
    assert authorizer["Properties"]["IdentitySource"] == ["$request.header.Authorization"]
    [client_id] = resources(template, "AWS::Cognito::UserPoolClient")
    assert authorizer["Properties"]["JwtConfiguration"]["Audience"] == [{"Ref": client_id}]
    for route in routes.values():
        assert route["Properties"]["AuthorizationType"] == "JWT"
        assert route["Properties"]["AuthorizerId"] == {"Ref": auth_id}


def test_app_client_uses_code_flow_with_the_distribution_as_callback(template):
    [client] = resources(template, "AWS::Cognito::UserPoolClient").values()
    props = client["Properties"]
    assert props["AllowedOAuthFlows"] == ["code"] and props["GenerateSecret"] is False
    assert "WebCdn" in json.dumps(props["CallbackURLs"]) and "DomainName" in json.dumps(props["CallbackURLs"])


def actor_statements(template: dict) -> dict:
    [policy] = resources(template, "AWS::IAM::ManagedPolicy").values()
    return {s["Sid"]: s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


def test_actor_role_only_acts_on_resources_tagged_with_the_session_owner(template):
    statements = actor_statements(template)
    owner = "${aws:PrincipalTag/Owner}"
    for sid in ("ActOnOwnInstances", "DeleteOwnKeyPair", "LaunchWithOwnKeyPair"):
        assert statements[sid]["Condition"]["StringEquals"]["aws:ResourceTag/Owner"] == owner, sid
    assert set(statements["ActOnOwnInstances"]["Action"]) == {"ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"}
    for sid in ("LaunchOwnInstanceOfAllowedType", "LaunchOwnEncryptedVolume", "LaunchOwnNetworkInterface",
                "CreateOwnKeyPair", "TagOnlyWhileCreating"):
        assert statements[sid]["Condition"]["StringEquals"]["aws:RequestTag/Owner"] == owner, sid
    launch = statements["LaunchOwnInstanceOfAllowedType"]["Condition"]["StringEquals"]
    assert "g4dn.xlarge" in launch["ec2:InstanceType"] and "p5.48xlarge" not in launch["ec2:InstanceType"]
    assert launch["ec2:MetadataHttpTokens"] == "required"
    assert statements["LaunchOwnEncryptedVolume"]["Condition"]["Bool"] == {"ec2:Encrypted": "true"}
    assert statements["TagOnlyWhileCreating"]["Condition"]["StringEquals"]["ec2:CreateAction"] == ["RunInstances", "CreateKeyPair"]
    assert statements["LaunchImagesOfConfiguredPublishers"]["Condition"]["StringEquals"]["ec2:Owner"] == ["099720109477", "amazon"]
    # Only the launch into the portal's own subnets and security group needs no condition.
    unconditioned = {sid for sid, s in statements.items() if "Condition" not in s}
    assert unconditioned == {"LaunchIntoPortalNetwork"}


def test_actor_role_trusts_only_the_api_function_with_session_tags(template):
    roles = resources(template, "AWS::IAM::Role")
    [actor] = [r for k, r in roles.items() if k.startswith("Ec2Actor")]
    [statement] = actor["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert sorted(statement["Action"]) == ["sts:AssumeRole", "sts:TagSession"]
    assert "FunctionsApiRole" in json.dumps(statement["Principal"])


def test_fixed_amis_are_listed_by_id(custom_template):
    statements = actor_statements(custom_template)
    assert "ami-0123456789abcdef0" in json.dumps(statements["LaunchConfiguredAmis"]["Resource"])
    assert "LaunchImagesOfConfiguredPublishers" not in statements


def test_no_ssh_from_anywhere_by_default(template):
    [group] = resources(template, "AWS::EC2::SecurityGroup").values()
    assert "SecurityGroupIngress" not in group["Properties"]
    assert "0.0.0.0/0" not in json.dumps([r for r in template["Resources"].values() if "Ingress" in r["Type"]])


def test_ssh_only_from_configured_cidrs(custom_template):
    [group] = resources(custom_template, "AWS::EC2::SecurityGroup").values()
    assert group["Properties"]["SecurityGroupIngress"] == [
        {"CidrIp": "192.0.2.0/24", "Description": "SSH from 192.0.2.0/24", "FromPort": 22, "IpProtocol": "tcp", "ToPort": 22}]


def test_vm_role_has_session_manager_and_reads_the_data_buckets(custom_template):
    roles = resources(custom_template, "AWS::IAM::Role")
    [vm_key] = [k for k, r in roles.items() if "ec2.amazonaws.com" in json.dumps(r["Properties"]["AssumeRolePolicyDocument"])]
    assert "AmazonSSMManagedInstanceCore" in json.dumps(roles[vm_key]["Properties"]["ManagedPolicyArns"])
    policies = [p for p in resources(custom_template, "AWS::IAM::Policy").values() if {"Ref": vm_key} in p["Properties"]["Roles"]]
    text = json.dumps(policies)
    assert "lab-helio-data" in text and "s3:GetObject" in text and "s3:PutObject" not in text


def test_tables_are_retained_with_point_in_time_recovery(template):
    tables = resources(template, "AWS::DynamoDB::Table")
    assert len(tables) == 3
    for table in tables.values():
        assert table["DeletionPolicy"] == "Retain"
        assert table["Properties"]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    ttl = [t["Properties"]["TimeToLiveSpecification"] for t in tables.values() if "TimeToLiveSpecification" in t["Properties"]]
    assert ttl == [{"AttributeName": "expires_at", "Enabled": True}]


def test_cloudfront_https_oac_and_security_headers(template):
    [dist] = resources(template, "AWS::CloudFront::Distribution").values()
    config = dist["Properties"]["DistributionConfig"]
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    [api_behavior] = config["CacheBehaviors"]
    assert api_behavior["PathPattern"] == "/api/*" and api_behavior["ViewerProtocolPolicy"] == "https-only"
    assert all(o.get("CustomOriginConfig", {}).get("OriginProtocolPolicy", "https-only") == "https-only" for o in config["Origins"])
    assert any("OriginAccessControlId" in o for o in config["Origins"])
    assert resources(template, "AWS::CloudFront::OriginAccessControl")
    [headers] = resources(template, "AWS::CloudFront::ResponseHeadersPolicy").values()
    security = headers["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    assert security["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert security["FrameOptions"]["FrameOption"] == "DENY"
    assert "default-src 'self'" in json.dumps(security["ContentSecurityPolicy"])
    [bucket] = resources(template, "AWS::S3::Bucket").values()
    assert bucket["Properties"]["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True


def test_lambdas_python312_and_state_change_rule_with_dlq(template):
    functions = [f for k, f in resources(template, "AWS::Lambda::Function").items() if k.startswith("Functions")]
    assert len(functions) == 4 and all(f["Properties"]["Runtime"] == "python3.12" for f in functions)
    handlers = sorted(f["Properties"]["Handler"] for f in functions)
    assert handlers == ["hc_portal.api.handle", "hc_portal.enforcer.handle", "hc_portal.events.handle", "hc_portal.reconcile.handle"]
    rules = resources(template, "AWS::Events::Rule")
    [state] = [r for r in rules.values() if "EventPattern" in r["Properties"]]
    assert state["Properties"]["EventPattern"]["detail-type"] == ["EC2 Instance State-change Notification"]
    [target] = state["Properties"]["Targets"]
    assert "DeadLetterConfig" in target and target["RetryPolicy"]["MaximumRetryAttempts"] == 8
    schedules = sorted(r["Properties"]["ScheduleExpression"] for r in rules.values() if "ScheduleExpression" in r["Properties"])
    assert schedules == ["cron(15 6 * * ? *)", "rate(5 minutes)"]


def test_outputs(template):
    assert {"PortalUrl", "ApiUrl", "AppClientId"} <= set(template["Outputs"])


def test_semantic_checks_name_the_bad_key():
    from heliocloud.config import ConfigError

    with pytest.raises(ConfigError, match=r"portal\.volume_gb: needs min <= default <= max"):
        validate({"instance": {"name": "lab"}, "portal": {"volume_gb": {"min": 100, "default": 50}}})
    twice = {"type": "t3.small", "vcpus": 2, "memory_gib": 2, "prices": {"us-east-1": 0.02}}
    with pytest.raises(ConfigError, match=r"portal\.instance_types\[1\]\.type: 't3.small' is listed twice"):
        validate({"instance": {"name": "lab"}, "portal": {"instance_types": [twice, twice]}})


def test_only_the_nightly_job_may_call_cost_explorer(template):
    """A dashboard view cannot cost a Cost Explorer call: the API's role has no ce:* at all."""
    roles = resources(template, "AWS::IAM::Role")
    with_ce = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if "ce:" in json.dumps(policy["Properties"]["PolicyDocument"]):
            with_ce |= {r["Ref"] for r in policy["Properties"]["Roles"]}
    assert [k for k in with_ce if k in roles] == [k for k in roles if k.startswith("FunctionsReconcileRole")]


def test_lambda_asset_imports_only_the_runtime():
    """The asset folder ships alone: stdlib, boto3/botocore and its own package only."""
    import ast
    import sys
    from pathlib import Path

    allowed = set(sys.stdlib_module_names) | {"boto3", "botocore", "hc_portal"}
    for path in (Path(__file__).resolve().parents[1] / "lambdas" / "portal").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"
