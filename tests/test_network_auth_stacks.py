"""Network and auth stacks: the synthesized default app and in-process variants."""
from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from heliocloud.config import InstanceConfig, validate
from stacks.auth import AuthStack
from stacks.network import NetworkStack

pytestmark = pytest.mark.unit


def config(**sections) -> InstanceConfig:
    return InstanceConfig(validate({"instance": {"name": "t-site"}, **sections}))


def network_template(**network) -> Template:
    return Template.from_stack(NetworkStack(cdk.App(), "Net", config=config(network=network)))


def test_default_network_has_two_azs_no_nat_s3_endpoint_and_flow_logs(default_templates):
    t = Template.from_json(default_templates["helio-Network"])
    t.resource_count_is("AWS::EC2::NatGateway", 0)
    t.resource_count_is("AWS::EC2::Subnet", 4)
    t.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway",
                                                        "ServiceName": Match.object_like({})})
    t.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL"})
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})
    t.has_resource_properties("AWS::EC2::Subnet", {"MapPublicIpOnLaunch": True, "Tags": Match.array_with(
        [{"Key": "kubernetes.io/role/elb", "Value": "1"}])})


@pytest.mark.parametrize("nat,expected", [(1, 1), (2, 2)])
def test_nat_gateway_count(nat, expected):
    t = network_template(nat_gateways=nat)
    t.resource_count_is("AWS::EC2::NatGateway", expected)


def test_no_nat_means_isolated_private_subnets_and_public_workloads():
    stack = NetworkStack(cdk.App(), "Net", config=config(network={"nat_gateways": 0}))
    assert stack.workload_subnets.subnet_type == cdk.aws_ec2.SubnetType.PUBLIC
    assert len(stack.vpc.isolated_subnets) == 2 and not stack.vpc.private_subnets


def test_user_pool_is_retained_with_strong_passwords_and_admins_group(default_templates):
    t = Template.from_json(default_templates["helio-Auth"])
    t.has_resource("AWS::Cognito::UserPool", {
        "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain",
        "Properties": Match.object_like({
            "DeletionProtection": "ACTIVE",
            "MfaConfiguration": "OPTIONAL",
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "Policies": {"PasswordPolicy": Match.object_like({
                "MinimumLength": 14, "RequireSymbols": True, "RequireUppercase": True})},
        }),
    })
    t.has_resource_properties("AWS::Cognito::UserPoolGroup", {"GroupName": "admins"})
    t.has_resource_properties("AWS::Cognito::UserPoolDomain", {"Domain": "helio-heliocloud"})


def test_admin_approval_signup_and_admin_users():
    t = Template.from_stack(AuthStack(cdk.App(), "Auth", config=config(
        auth={"self_signup": "admin-approval", "admins": ["pi@example.edu"], "domain_prefix": "my-helio"})))
    t.has_resource_properties("AWS::Cognito::UserPool", {"AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False}})
    pool = t.find_resources("AWS::Cognito::UserPool")
    assert not next(iter(pool.values()))["Properties"].get("AutoVerifiedAttributes")
    t.has_resource_properties("AWS::Cognito::UserPoolUser", {"Username": "pi@example.edu"})
    t.has_resource_properties("AWS::Cognito::UserPoolUserToGroupAttachment",
                              {"GroupName": "admins", "Username": "pi@example.edu"})
    t.has_resource_properties("AWS::Cognito::UserPoolDomain", {"Domain": "my-helio"})


def test_every_resource_is_tagged_with_the_instance(default_templates):
    t = Template.from_json(default_templates["helio-Network"])
    t.has_resource_properties("AWS::EC2::VPC", {"Tags": Match.array_with([{"Key": "heliocloud:instance",
                                                                           "Value": "helio"}])})
    t = Template.from_json(default_templates["helio-Auth"])
    t.has_resource_properties("AWS::Cognito::UserPool", {"UserPoolTags": Match.object_like(
        {"heliocloud:instance": "helio"})})


def test_the_pinned_cdk_cli_synthesizes_offline(tmp_path):
    """`npx cdk synth` with the CLI pinned in package.json reads this aws-cdk-lib's assembly, with
    no credentials and another instance file chosen by `-c config=`."""
    import os
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "CDK_DISABLE_VERSION_CHECK": "1",
                "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"})
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "-o", str(tmp_path),
         "-c", "config=instances/registry-only.yaml"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    stacks = sorted(p.name for p in tmp_path.glob("*.template.json"))
    assert "helio-data-Network.template.json" in stacks and "helio-data-Auth.template.json" in stacks
    assert not any("Daskhub" in s or "Portal" in s for s in stacks)
