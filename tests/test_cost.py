"""Idle-cost estimate: every priced resource type on small hand-written templates, the default
app's synthesized templates, and the `heliocloud cost` command."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from heliocloud import cost, user_hours
from heliocloud.cloudformation import with_nested_stacks
from heliocloud.prices import PriceError, load_prices
from heliocloud.cli import main

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.unit

H = 730  # hours per month in prices.yaml
PRICES = load_prices("us-east-1")
SUMMER = dt.date(2026, 7, 1)  # 1.33 still in standard support
AUTUMN = dt.date(2026, 8, 1)  # 1.33 in extended support, 1.34 standard


def network_stack() -> dict:
    """Two public and two private subnets, exported the way CDK exports them across stacks."""
    resources, outputs = {}, {}
    for i, public in enumerate([True, True, False, False]):
        name = f"{'Public' if public else 'Private'}Subnet{i}"
        resources[name] = {"Type": "AWS::EC2::Subnet", "Properties": {"MapPublicIpOnLaunch": public, "VpcId": {"Ref": "Vpc"}}}
        outputs[f"Export{name}"] = {"Value": {"Ref": name}, "Export": {"Name": f"Net:ExportsOutputRef{name}"}}
    resources["Vpc"] = {"Type": "AWS::EC2::VPC", "Properties": {}}
    return {"Resources": resources, "Outputs": outputs}


def imported(*names: str) -> list[dict]:
    return [{"Fn::ImportValue": f"Net:ExportsOutputRef{n}"} for n in names]


PUBLIC = imported("PublicSubnet0", "PublicSubnet1")
PRIVATE = imported("PrivateSubnet2", "PrivateSubnet3")


def estimate(resources: dict, *, on: dt.date = SUMMER) -> cost.Estimate:
    templates = {"Net": network_stack(), "App": {"Resources": resources}}
    return cost.estimate_idle(templates, PRICES, on=on)


def lines(resources: dict, **kw) -> dict[str, float]:
    """{item description: $/month} of the App stack's resources."""
    return {i.what: round(i.monthly, 4) for i in estimate(resources, **kw).items if i.resource.startswith("App/")}


def res(type_: str, **props) -> dict:
    return {"Type": type_, "Properties": props}


# ----------------------------------------------------------------------------- control plane
@pytest.mark.parametrize("on, hourly", [(SUMMER, 0.10), (AUTUMN, 0.60)])
def test_eks_cluster_is_billed_by_support_window(on, hourly):
    got = lines({"Cluster": res("AWS::EKS::Cluster", Version="1.33")}, on=on)
    assert got == {"EKS cluster": pytest.approx(hourly * H)}


def test_cdk_eks_v1_custom_resource_is_an_eks_cluster():
    got = lines({"Cluster": res("Custom::AWSCDK-EKS-Cluster", Config={"version": "1.34"})}, on=AUTUMN)
    assert got == {"EKS cluster": pytest.approx(73.0)}


def test_standard_upgrade_policy_never_pays_extended_support():
    cluster = res("AWS::EKS::Cluster", Version="1.32", UpgradePolicy={"SupportType": "STANDARD"})
    assert lines({"Cluster": cluster}, on=AUTUMN) == {"EKS cluster": pytest.approx(73.0)}


def test_unknown_kubernetes_version_is_priced_standard_with_a_warning():
    result = estimate({"Cluster": res("AWS::EKS::Cluster", Version="1.99")})
    assert result.total == pytest.approx(73.0)
    assert any("1.99" in w for w in result.warnings)


def test_eks_auto_mode_fee_is_flagged():
    result = estimate({"Cluster": res("AWS::EKS::Cluster", Version="1.34", ComputeConfig={"Enabled": True})})
    assert any("Auto Mode" in w for w in result.warnings)


# ------------------------------------------------------------------------------------- nodes
def test_node_group_at_min_size_with_root_volumes_and_public_addresses():
    group = res("AWS::EKS::Nodegroup", NodegroupName="core", InstanceTypes=["t3.large"],
                ScalingConfig={"MinSize": 1, "MaxSize": 2, "DesiredSize": 1}, Subnets=PUBLIC)
    assert lines({"Core": group}) == {
        "node group core at min size": pytest.approx(0.0832 * H),
        "node group core at min size: root volumes": pytest.approx(20 * 0.10),  # default 20 GiB gp2
        "node group core at min size: public IPv4": pytest.approx(0.005 * H),
    }


def test_node_group_that_scales_to_zero_costs_nothing_idle_and_prices_a_node_hour():
    group = res("AWS::EKS::Nodegroup", InstanceTypes=["m5.xlarge"], CapacityType="SPOT",
                ScalingConfig={"MinSize": 0, "MaxSize": 10}, Subnets=PRIVATE)
    result = estimate({"Users": group})
    assert result.total == 0
    [line] = result.items
    assert "scales to zero" in line.assumption and "spot" in line.assumption
    [pool] = cost.scalable_node_pools({"Net": network_stack(), "App": {"Resources": {"Users": group}}}, PRICES)
    assert (pool.instance_type, pool.spot, pool.public_ip) == ("m5.xlarge", True, False)


def test_node_group_reads_type_and_disk_from_its_launch_template():
    resources = {
        "Lt": res("AWS::EC2::LaunchTemplate", LaunchTemplateData={
            "InstanceType": "t4g.medium",
            "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 40, "VolumeType": "gp3"}}]}),
        "Core": res("AWS::EKS::Nodegroup", ScalingConfig={"MinSize": "2", "MaxSize": "3"}, Subnets=PRIVATE,
                    LaunchTemplate={"Id": {"Ref": "Lt"}, "Version": {"Fn::GetAtt": ["Lt", "LatestVersionNumber"]}}),
    }
    assert lines(resources) == {
        "node group at min size": pytest.approx(2 * 0.0336 * H),
        "node group at min size: root volumes": pytest.approx(2 * 40 * 0.08),
    }


def test_auto_scaling_group_with_launch_template():
    resources = {
        "Lt": res("AWS::EC2::LaunchTemplate", LaunchTemplateData={"InstanceType": "m5.large"}),
        "Asg": res("AWS::AutoScaling::AutoScalingGroup", MinSize="1", MaxSize="4", VPCZoneIdentifier=PUBLIC,
                   LaunchTemplate={"LaunchTemplateId": {"Ref": "Lt"}, "Version": "1"}),
    }
    assert lines(resources) == {
        "auto scaling group at min size": pytest.approx(0.096 * H),
        "auto scaling group at min size: root volumes": pytest.approx(2.0),
        "auto scaling group at min size: public IPv4": pytest.approx(3.65),
    }


def test_auto_scaling_group_all_spot_mixed_instances():
    resources = {
        "Lt": res("AWS::EC2::LaunchTemplate", LaunchTemplateData={}),
        "Asg": res("AWS::AutoScaling::AutoScalingGroup", MinSize="1", MaxSize="4", VPCZoneIdentifier=PRIVATE,
                   MixedInstancesPolicy={
                       "LaunchTemplate": {"LaunchTemplateSpecification": {"LaunchTemplateId": {"Ref": "Lt"}},
                                          "Overrides": [{"InstanceType": "c5.xlarge"}]},
                       "InstancesDistribution": {"OnDemandBaseCapacity": 0, "OnDemandPercentageAboveBaseCapacity": 0}}),
    }
    assert lines(resources)["auto scaling group at min size"] == pytest.approx(0.17 * 0.35 * H)


def test_ec2_instance_with_default_root_volume_in_a_public_subnet():
    instance = res("AWS::EC2::Instance", InstanceType="t3.micro", SubnetId={"Fn::ImportValue": "Net:ExportsOutputRefPublicSubnet0"})
    assert lines({"Vm": instance}) == {
        "EC2 instance": pytest.approx(0.0104 * H),
        "EC2 instance: root volumes": pytest.approx(8 * 0.08),
        "EC2 instance: public IPv4": pytest.approx(3.65),
    }


def test_unpriced_instance_type_is_a_warning_not_a_crash():
    result = estimate({"Vm": res("AWS::EC2::Instance", InstanceType="x9z.mega")})
    assert result.total == 0 and any("x9z.mega" in w for w in result.warnings)


# ----------------------------------------------------------------------------------- network
def test_nat_gateway_and_its_elastic_ip():
    got = lines({"Eip": res("AWS::EC2::EIP", Domain="vpc"),
                 "Nat": res("AWS::EC2::NatGateway", AllocationId={"Fn::GetAtt": ["Eip", "AllocationId"]})})
    assert got == {"NAT gateway": pytest.approx(32.85), "Elastic IP (public IPv4)": pytest.approx(3.65)}


def test_load_balancers_and_their_public_addresses():
    got = lines({
        "Alb": res("AWS::ElasticLoadBalancingV2::LoadBalancer", Subnets=PUBLIC),
        "Nlb": res("AWS::ElasticLoadBalancingV2::LoadBalancer", Type="network", Scheme="internal", Subnets=PRIVATE),
        "Clb": res("AWS::ElasticLoadBalancing::LoadBalancer", Subnets=PUBLIC + imported("PrivateSubnet2")),
    })
    assert got == {
        "load balancer (ALB)": pytest.approx(16.425), "load balancer (ALB): public IPv4": pytest.approx(7.30),
        "load balancer (NLB)": pytest.approx(16.425),
        "load balancer (Classic LB)": pytest.approx(18.25), "load balancer (Classic LB): public IPv4": pytest.approx(10.95),
    }


def test_vpc_endpoints_gateway_free_interface_per_az():
    got = lines({"S3": res("AWS::EC2::VPCEndpoint", ServiceName="com.amazonaws.us-east-1.s3"),
                 "Ecr": res("AWS::EC2::VPCEndpoint", VpcEndpointType="Interface", SubnetIds=PRIVATE)})
    assert got == {"VPC gateway endpoint": 0.0, "VPC interface endpoint": pytest.approx(2 * 7.30)}


def daskhub_chart(values: dict | str) -> dict:
    return res("Custom::AWSCDK-Helm-Chart", Chart="daskhub", Release="daskhub", Namespace="daskhub",
               Values=values if isinstance(values, str) else json.dumps(values))


def test_daskhub_chart_gets_the_proxy_load_balancer_it_creates_outside_cloudformation():
    result = estimate({"Chart": daskhub_chart({"jupyterhub": {"hub": {}}})})
    classic = [i for i in result.items if "Classic LB" in i.what]
    assert [round(i.monthly, 2) for i in classic] == [18.25, 7.30]  # 2 public subnets = 2 AZs
    assert "jupyterhub.proxy.service" in classic[0].assumption and "daskhub" in classic[0].what


def test_chart_values_choose_the_load_balancer_kind_or_none():
    nlb = {"jupyterhub": {"proxy": {"service": {"annotations": {
        "service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}}}}}
    assert [i.what for i in estimate({"Chart": daskhub_chart(nlb)}).items] == \
        ["load balancer (NLB) of Helm chart daskhub", "load balancer (NLB) of Helm chart daskhub: public IPv4"]
    cluster_ip = {"jupyterhub": {"proxy": {"service": {"type": "ClusterIP"}}}}
    assert estimate({"Chart": daskhub_chart(cluster_ip)}).items == []
    gateway_lb = {"dask-gateway": {"traefik": {"service": {"type": "LoadBalancer"}}}}
    assert len([i for i in estimate({"Chart": daskhub_chart(gateway_lb)}).items if "public" not in i.what]) == 2


def test_a_manifest_service_of_type_load_balancer_is_priced():
    """The Daskhub applies its hub-public Service as a manifest; Kubernetes makes the load balancer."""
    manifest = {"Fn::Join": ["", ['[{"apiVersion":"v1","kind":"Service","metadata":{"name":"hub-public",'
                                  '"annotations":{"service.beta.kubernetes.io/aws-load-balancer-security-groups":"',
                                  {"Fn::GetAtt": ["Sg", "GroupId"]}, '"}},"spec":{"type":"LoadBalancer"}},'
                                  '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"daskhub"}}]']]}
    result = estimate({"Hub": res("Custom::AWSCDK-EKS-KubernetesResource", Manifest=manifest),
                       "Ns": res("Custom::AWSCDK-EKS-KubernetesResource", Manifest='[{"kind":"Namespace"}]')})
    assert [(i.what, round(i.monthly, 2)) for i in result.items] == [
        ("load balancer (Classic LB) of Service hub-public", 18.25),
        ("load balancer (Classic LB) of Service hub-public: public IPv4", 7.30)]
    assert result.warnings == []


def test_the_hub_charts_of_today_and_the_subnets_a_load_balancer_is_given():
    """The jupyterhub chart makes a proxy LB unless told otherwise; the dask-gateway chart's traefik
    is a LoadBalancer by default; a Service naming its subnets gets one address per subnet."""
    jupyterhub = res("Custom::AWSCDK-Helm-Chart", Chart="jupyterhub", Values="{}")
    gateway = res("Custom::AWSCDK-Helm-Chart", Chart="dask-gateway", Values='{"traefik":{"service":{"type":"ClusterIP"}}}')
    assert [i.what for i in estimate({"Hub": jupyterhub, "Gw": gateway}).items if "public" not in i.what] == [
        "load balancer (Classic LB) of Helm chart jupyterhub"]
    manifest = {"Fn::Join": ["", ['{"apiVersion":"v1","kind":"Service","metadata":{"name":"hub-public",'
                                  '"annotations":{"service.beta.kubernetes.io/aws-load-balancer-subnets":"',
                                  {"Ref": "PublicSubnet1"}, '"}},"spec":{"type":"LoadBalancer"}}']]}
    assert lines({"Hub": res("Custom::AWSCDK-EKS-KubernetesResource", Manifest=manifest)}) == {
        "load balancer (Classic LB) of Service hub-public": 18.25,
        "load balancer (Classic LB) of Service hub-public: public IPv4": 3.65}


def test_the_researcher_image_repository_is_priced_by_its_estimated_size():
    assert lines({"Images": res("AWS::ECR::Repository")}) == {"ECR repository: stored images": 0.7}


def test_chart_values_with_tokens_are_read():
    values = {"Fn::Join": ["", ['{"jupyterhub":{"hub":{"config":{"x":"', {"Ref": "Pool"},
                                 '"}},"proxy":{"service":{"type":"ClusterIP"}}}}']]}
    result = estimate({"Chart": daskhub_chart("{}") | {"Properties": {"Chart": "daskhub", "Values": values}}})
    assert result.items == [] and result.warnings == []


def test_cloudfront_and_route53_and_waf():
    got = lines({"Cdn": res("AWS::CloudFront::Distribution", DistributionConfig={}),
                 "Zone": res("AWS::Route53::HostedZone", Name="example.org"),
                 "Acl": res("AWS::WAFv2::WebACL", Rules=[{}, {}])})
    assert got == {"CloudFront distribution": 0.0, "Route 53 hosted zone": 0.5, "WAF web ACL": 7.0}


# ------------------------------------------------------------------------------ data and keys
def test_storage_is_usage_except_what_is_provisioned():
    got = lines({
        "Bucket": res("AWS::S3::Bucket"),
        "Homes": res("AWS::EFS::FileSystem"),
        "Fast": res("AWS::EFS::FileSystem", ThroughputMode="provisioned", ProvisionedThroughputInMibps=10),
        "Ledger": res("AWS::DynamoDB::Table", BillingMode="PAY_PER_REQUEST"),
        "Everywhere": res("AWS::DynamoDB::GlobalTable", BillingMode="PAY_PER_REQUEST"),
        "Old": res("AWS::DynamoDB::Table", ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}),
        "Disk": res("AWS::EC2::Volume", Size=100, VolumeType="gp3"),
    })
    assert got == {
        "S3 bucket": 0.0, "EFS file system": 0.0, "EFS provisioned throughput": pytest.approx(60.0),
        "DynamoDB table (on-demand)": 0.0, "DynamoDB table (provisioned)": pytest.approx((5 * 0.00013 + 5 * 0.00065) * H),
        "EBS volume": pytest.approx(8.0),
    }


def test_keys_secrets_parameters_and_users():
    got = lines({"Key": res("AWS::KMS::Key", EnableKeyRotation=True),
                 "Secret": res("AWS::SecretsManager::Secret"),
                 "Param": res("AWS::SSM::Parameter", Tier="Advanced", Type="String", Value="x"),
                 "Plain": res("AWS::SSM::Parameter", Type="String", Value="x"),
                 "Pool": res("AWS::Cognito::UserPool")})
    assert got == {"KMS key": 1.0, "Secrets Manager secret": 0.4, "SSM advanced parameter": 0.05, "Cognito user pool": 0.0}


def test_monitoring():
    got = lines({"Alarm": res("AWS::CloudWatch::Alarm", Period=300),
                 "Fast": res("AWS::CloudWatch::Alarm", Period=10),
                 "Both": res("AWS::CloudWatch::CompositeAlarm", AlarmRule="x"),
                 "Board": res("AWS::CloudWatch::Dashboard"),
                 "Logs": res("AWS::Logs::LogGroup", RetentionInDays=30),
                 "Flow": res("AWS::EC2::FlowLog")})
    assert got["CloudWatch alarm"] in (0.1, 0.3) and got["CloudWatch composite alarm"] == 0.5
    assert got["CloudWatch dashboard"] == 3.0 and got["CloudWatch log group"] == 0.0
    assert got["VPC flow log"] == pytest.approx(0.25)
    alarms = sorted(i.monthly for i in estimate({"A": res("AWS::CloudWatch::Alarm", Period=300),
                                                  "B": res("AWS::CloudWatch::Alarm", Period=10)}).items)
    assert alarms == [0.1, 0.3]


def test_every_pricer_is_exercised_by_these_tests():
    """A new priced type needs a test here: the hand-written templates above cover them all."""
    import inspect
    import sys

    source = inspect.getsource(sys.modules[__name__])
    assert [t for t in cost.PRICERS if f'"{t}"' not in source] == []


def test_free_and_unknown_types_are_counted_and_unknown_ones_warned():
    result = estimate({"Role": res("AWS::IAM::Role"), "Fn": res("AWS::Lambda::Function"),
                       "Db": res("AWS::RDS::DBInstance", DBInstanceClass="db.t3.micro")})
    assert result.free["AWS::IAM::Role"] == 1 and result.free["AWS::Lambda::Function"] == 1
    assert result.unknown == {"AWS::RDS::DBInstance": 1}
    assert any("AWS::RDS::DBInstance" in w for w in result.warnings)


def test_nested_stack_templates_are_priced(tmp_path):
    """Found by the asset hash in TemplateURL (plain synth) or by asset metadata (CDK CLI)."""
    (tmp_path / "App.nested.template.json").write_text(json.dumps({"Resources": {"Key": res("AWS::KMS::Key")}}))
    (tmp_path / "App.assets.json").write_text(json.dumps({"files": {"ab12": {
        "source": {"path": "App.nested.template.json", "packaging": "file"}}}}))
    url = {"Fn::Join": ["", ["https://s3.", {"Ref": "AWS::Region"}, "/cdk-assets/ab12.json"]]}
    parent = {"Resources": {
        "ByUrl": {"Type": "AWS::CloudFormation::Stack", "Properties": {"TemplateURL": url}},
        "ByMetadata": {"Type": "AWS::CloudFormation::Stack", "Properties": {},
                       "Metadata": {"aws:asset:path": "App.nested.template.json"}}}}
    templates = with_nested_stacks({"App": parent}, tmp_path)
    assert set(templates) == {"App", "App/ByUrl", "App/ByMetadata"}
    assert cost.estimate_idle(templates, PRICES).total == 2.0


# ------------------------------------------------------------------------------ prices, users
def test_unknown_region_is_a_clear_error():
    with pytest.raises(PriceError, match="no prices for region 'eu-west-1'.*us-east-1"):
        load_prices("eu-west-1")


def test_price_file_states_its_date_and_region():
    assert PRICES.region == "us-east-1" and dt.date.fromisoformat(PRICES.as_of)


def test_notebook_profiles_run_on_their_node_groups():
    from heliocloud.config import load

    found = user_hours.notebook_profiles(load(REPO / "instance.yaml").daskhub)
    assert [(p.name, p.instance_type, p.cpu) for p in found] == [
        ("small", "m6a.xlarge", 1.0), ("medium", "m6a.xlarge", 2.0), ("large", "m6a.xlarge", 3.0),
        ("gpu", "g4dn.xlarge", 3.0)]


def test_user_hour_cost_is_the_node_and_the_users_share_of_it():
    small, gpu, odd = user_hours.user_hour_costs(
        [user_hours.Profile("small", "m5.xlarge", cpu=2, memory_gib=4), user_hours.Profile("gpu", "g4dn.xlarge"),
         user_hours.Profile("odd", "zz.huge")], PRICES, public_ip=True)
    node = 0.192 + 20 * 0.10 / H + 0.005
    assert small.node_hour == pytest.approx(node) and small.share_hour == pytest.approx(node / 2)
    assert gpu.node_hour == pytest.approx(0.526 + 20 * 0.10 / H + 0.005) and gpu.share_hour is None
    assert odd.node_hour is None


# ----------------------------------------------------------------------- the default instance
@pytest.fixture(scope="module")
def default_with_nested(default_templates, default_cdk_out) -> dict[str, dict]:
    return with_nested_stacks(default_templates, default_cdk_out)


def test_default_instance_prices_every_resource(default_with_nested):
    result = cost.estimate_idle(default_with_nested, PRICES, on=dt.date.fromisoformat(PRICES.as_of))
    assert result.unknown == {}, result.warnings
    assert result.warnings == []


# The default config's idle budget (breakdown, and what each saving changes for users, in
# docs/admin/costs.md): anything past it is a regression to explain.
IDLE_BUDGET = 130


def test_default_instance_idles_within_its_budget(default_with_nested):
    """Goal of the default config: the lowest idle cost that keeps the architecture sound."""
    result = cost.estimate_idle(default_with_nested, PRICES, on=dt.date.fromisoformat(PRICES.as_of))
    assert result.total <= IDLE_BUDGET, [(i.what, round(i.monthly, 2)) for i in result.items if i.monthly]
    nat = [i for i in result.items if i.what == "NAT gateway"]
    assert nat == []  # the default has no NAT gateway (network.nat_gateways: 0)


def test_cost_command_json_on_an_assembly(default_cdk_out, capsys):
    assert main(["cost", "--cdk-out", str(default_cdk_out), "--json", "--on", PRICES.as_of]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["instance"] == "helio" and report["region"] == "us-east-1"
    assert report["total_monthly_usd"] == pytest.approx(sum(i["monthly"] for i in report["items"]), abs=0.01)


def test_cost_command_table(default_cdk_out, capsys):
    assert main(["cost", "--cdk-out", str(default_cdk_out)]) == 0
    out = capsys.readouterr().out
    assert "monthly cost with no users" in out and "total" in out


def test_cost_command_refuses_an_unknown_region(default_cdk_out, capsys):
    assert main(["cost", "--cdk-out", str(default_cdk_out), "--region", "eu-west-1"]) == 2
    assert "no prices for region 'eu-west-1'" in capsys.readouterr().err


def test_cost_command_refuses_a_folder_that_is_not_an_assembly(tmp_path, capsys):
    assert main(["cost", "--cdk-out", str(tmp_path)]) == 2
    assert "not a cloud assembly" in capsys.readouterr().err
