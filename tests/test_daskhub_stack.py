"""The Daskhub stack: the default app's synthesized template (with cdk-nag) and in-process variants."""
from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match, Template

from heliocloud.config import ConfigError, InstanceConfig, validate
from stacks.auth import AuthStack
from stacks.daskhub import DaskhubStack
from stacks.network import NetworkStack

pytestmark = pytest.mark.unit


def config(**sections) -> InstanceConfig:
    return InstanceConfig(validate({"instance": {"name": "t-site"}, **sections}))


def daskhub_template(**sections) -> Template:
    app = cdk.App()
    cfg = config(**sections)
    network = NetworkStack(app, "Net", config=cfg)
    auth = AuthStack(app, "Auth", config=cfg)
    return Template.from_stack(DaskhubStack(app, "Hub", config=cfg, network=network, auth=auth))


@pytest.fixture(scope="module")
def template(default_templates) -> Template:
    return Template.from_json(default_templates["helio-Daskhub"])


@pytest.fixture(scope="module")
def raw(default_templates) -> dict:
    return default_templates["helio-Daskhub"]


def resources(raw: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in raw["Resources"].items() if r["Type"] == kind}


def joined(value) -> str:
    """A template string value with its intrinsic-function parts replaced by TOKEN."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        return "".join(p if isinstance(p, str) else "TOKEN" for p in value["Fn::Join"][1])
    return "TOKEN"


def nodegroup(raw: dict, group: str) -> dict:
    return next(r["Properties"] for r in resources(raw, "AWS::EKS::Nodegroup").values()
                if r["Properties"]["Labels"]["heliocloud/node-group"] == group)


# ---------------------------------------------------------------- cluster
def test_cluster_version_logs_encryption_and_endpoint(template):
    template.has_resource_properties("AWS::EKS::Cluster", {
        "Name": "helio-daskhub",
        "Version": "1.35",
        "AccessConfig": {"AuthenticationMode": "API"},
        "ComputeConfig": {"Enabled": False},  # no Auto Mode: our own node groups
        "EncryptionConfig": [Match.object_like({"Resources": ["secrets"]})],
        "Logging": {"ClusterLogging": {"EnabledTypes": Match.array_with([{"Type": "api"}, {"Type": "audit"},
                                                                         {"Type": "authenticator"}])}},
        "ResourcesVpcConfig": Match.object_like({"EndpointPrivateAccess": True, "EndpointPublicAccess": True}),
    })
    template.has_resource_properties("AWS::Logs::LogGroup", {"LogGroupName": "/aws/eks/helio-daskhub/cluster",
                                                             "RetentionInDays": 30})
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_private_endpoint_runs_kubectl_in_the_vpc():
    t = daskhub_template(network={"nat_gateways": 1}, daskhub={"endpoint_access": "private"})
    t.has_resource_properties("AWS::EKS::Cluster", {"ResourcesVpcConfig": Match.object_like(
        {"EndpointPrivateAccess": True, "EndpointPublicAccess": False})})
    t.has_resource_properties("AWS::Lambda::Function", {"VpcConfig": Match.object_like({"SubnetIds": Match.any_value()})})


def test_restricted_public_endpoint():
    t = daskhub_template(network={"nat_gateways": 1}, daskhub={"api_allowed_cidrs": ["192.0.2.0/24"]})
    t.has_resource_properties("AWS::EKS::Cluster", {"ResourcesVpcConfig": Match.object_like(
        {"PublicAccessCidrs": ["192.0.2.0/24"]})})


def test_admin_roles_get_cluster_admin_access_entries():
    arn = "arn:aws:iam::123456789012:role/SSOAdmin"
    t = daskhub_template(daskhub={"admin_role_arns": [arn]})
    entries = [r["Properties"] for r in t.find_resources("AWS::EKS::AccessEntry").values()
               if r["Properties"]["PrincipalArn"] == arn]
    assert len(entries) == 1
    assert joined(entries[0]["AccessPolicies"][0]["PolicyArn"]).endswith("cluster-access-policy/AmazonEKSClusterAdminPolicy")


# ---------------------------------------------------------------- node groups
def test_five_node_groups_with_ami_capacity_and_sizes(raw):
    expected = {
        "core": ("AL2023_ARM_64_STANDARD", "ON_DEMAND", 1),  # t4g.medium: Graviton
        "user": ("AL2023_x86_64_STANDARD", "ON_DEMAND", 0),
        "user-gpu": ("AL2023_x86_64_NVIDIA", "ON_DEMAND", 0),
        "dask-worker": ("AL2023_x86_64_STANDARD", "SPOT", 0),
        "dask-worker-gpu": ("AL2023_x86_64_NVIDIA", "SPOT", 0),
    }
    assert len(resources(raw, "AWS::EKS::Nodegroup")) == 5
    for group, (ami, capacity, minimum) in expected.items():
        props = nodegroup(raw, group)
        assert (props["AmiType"], props["CapacityType"], props["ScalingConfig"]["MinSize"]) == (ami, capacity, minimum)
        assert props["ScalingConfig"]["DesiredSize"] == minimum
        assert props["Version"] == "1.35"  # nodes follow the control plane on upgrade
        assert len(props["Subnets"]) == 2  # multi-AZ
    assert nodegroup(raw, "core")["InstanceTypes"] == ["t4g.medium"]
    assert nodegroup(raw, "core")["DiskSize"] == 20  # no researcher image is pulled there
    assert len(nodegroup(raw, "dask-worker")["InstanceTypes"]) >= 3  # several spot pools


def test_taints_keep_pods_where_they_belong(raw):
    def taints(group):
        return {(t["Key"], t["Value"], t["Effect"]) for t in nodegroup(raw, group)["Taints"]}

    user, worker, gpu = (("hub.jupyter.org/dedicated", "user", "NO_SCHEDULE"),
                         ("k8s.dask.org/dedicated", "worker", "NO_SCHEDULE"), ("nvidia.com/gpu", "present", "NO_SCHEDULE"))
    assert taints("core") == set()  # hub, gateway and add-ons (never spot)
    assert taints("user") == {user}
    assert taints("user-gpu") == {user, gpu}
    assert taints("dask-worker") == {worker}
    assert taints("dask-worker-gpu") == {worker, gpu}
    # Dask schedulers share the on-demand notebook nodes (never spot, x86 like their image).
    assert nodegroup(raw, "user")["Labels"]["k8s.dask.org/node-purpose"] == "scheduler"


def test_autoscaler_node_template_tags_reach_each_asg(raw):
    tag_calls = [joined(r["Properties"]["Create"]) for r in resources(raw, "Custom::AWS").values()
                 if "createOrUpdateTags" in joined(r["Properties"]["Create"])]
    assert len(tag_calls) == 5
    gpu = [c for c in tag_calls if "dask-worker-gpu" in c][0]
    for tag in ["k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu\\\",\\\"Value\\\":\\\"1",
                "k8s.io/cluster-autoscaler/node-template/taint/nvidia.com/gpu\\\",\\\"Value\\\":\\\"present:NoSchedule",
                "k8s.io/cluster-autoscaler/node-template/label/heliocloud/node-group\\\",\\\"Value\\\":\\\"dask-worker-gpu"]:
        assert tag.replace("\\", "") in gpu.replace("\\", "")
    cpu = [c for c in tag_calls if '"dask-worker\\"' in c or "dask-worker-node-template" in c]
    assert cpu and "resources/nvidia.com/gpu" not in cpu[0]


# ---------------------------------------------------------------- add-ons
def test_csi_add_ons_with_irsa_roles_after_the_first_node(template):
    for addon in ("aws-ebs-csi-driver", "aws-efs-csi-driver"):
        template.has_resource("AWS::EKS::Addon", {
            "Properties": Match.object_like({"AddonName": addon, "ServiceAccountRoleArn": Match.any_value()}),
            "DependsOn": Match.array_with([Match.string_like_regexp("NodegroupCore")])})


def test_irsa_trust_is_per_service_account(raw):
    conditions = " ".join(json.dumps(r["Properties"]["Value"]) for r in resources(raw, "Custom::AWSCDKCfnJson").values())
    for subject in ("system:serviceaccount:kube-system:ebs-csi-controller-sa",
                    "system:serviceaccount:kube-system:efs-csi-controller-sa",
                    "system:serviceaccount:kube-system:cluster-autoscaler",
                    "system:serviceaccount:daskhub:heliocloud-user",
                    "system:serviceaccount:daskhub:hub"):
        assert subject in conditions
    assert conditions.count("sts.amazonaws.com") == 5
    assert len(resources(raw, "AWS::IAM::OIDCProvider")) == 1


def test_cluster_autoscaler_and_gpu_plugin_charts(raw):
    charts = {r["Properties"]["Chart"]: r["Properties"] for r in resources(raw, "Custom::AWSCDK-EKS-HelmChart").values()}
    assert set(charts) == {"cluster-autoscaler", "nvidia-device-plugin", "jupyterhub", "dask-gateway"}
    autoscaler = json.loads(joined(charts["cluster-autoscaler"]["Values"]))
    assert autoscaler["autoDiscovery"] == {"clusterName": "helio-daskhub"}
    assert autoscaler["rbac"]["serviceAccount"] == {"create": False, "name": "cluster-autoscaler"}
    assert autoscaler["extraArgs"]["scale-down-unneeded-time"] == "10m"
    assert autoscaler["image"]["tag"].startswith("v1.35.")
    plugin = json.loads(joined(charts["nvidia-device-plugin"]["Values"]))
    assert plugin["nodeSelector"] == {"heliocloud/gpu": "true"}
    assert plugin["tolerations"] == [{"operator": "Exists"}]


def test_autoscaler_may_only_scale_this_clusters_groups(template):
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                           "Condition": {"StringEquals": {
                               "aws:ResourceTag/k8s.io/cluster-autoscaler/helio-daskhub": "owned"}}})])}})


# ---------------------------------------------------------------- storage and data
def test_efs_is_encrypted_retained_with_user_owned_access_points(template, raw):
    template.has_resource("AWS::EFS::FileSystem", {"DeletionPolicy": "Retain",
                                                   "Properties": Match.object_like({"Encrypted": True})})
    points = {r["Properties"]["RootDirectory"]["Path"]: r["Properties"]["PosixUser"]
              for r in resources(raw, "AWS::EFS::AccessPoint").values()}
    assert points == {"/homes": {"Uid": "1000", "Gid": "100"}, "/shared": {"Uid": "1000", "Gid": "100"},
                      "/hub-db": {"Uid": "1000", "Gid": "1000"}}


def test_data_role_reads_registry_and_extra_buckets_and_writes_scratch():
    t = daskhub_template(registry={"buckets": [{"name": "helio-data-1"}]},
                         daskhub={"extra_read_buckets": ["noaa-goes16"]})
    policy = next(r["Properties"]["PolicyDocument"]["Statement"] for k, r in t.find_resources("AWS::IAM::Policy").items()
                  if "DataAccount" in k)
    by_action = {json.dumps(s["Action"]): [joined(r) for r in (s["Resource"] if isinstance(s["Resource"], list)
                                                               else [s["Resource"]])] for s in policy}
    assert by_action['"s3:GetObject"'] == ["arn:TOKEN:s3:::helio-data-1/*", "arn:TOKEN:s3:::noaa-goes16/*"]
    assert by_action['["s3:ListBucket", "s3:GetBucketLocation"]'] == ["arn:TOKEN:s3:::helio-data-1",
                                                                      "arn:TOKEN:s3:::noaa-goes16"]
    writes = [resources for action, resources in by_action.items() if "s3:PutObject" in action]
    assert writes == [["TOKEN", "TOKEN/users/*"]]  # the scratch bucket (listing) and its users/ objects
    assert not any("helio-data-1" in r and "Put" in a for a, rs in by_action.items() for r in rs)


def test_scratch_bucket_expires_and_is_private(template):
    template.has_resource_properties("AWS::S3::Bucket", {
        "LifecycleConfiguration": {"Rules": Match.array_with([Match.object_like({"ExpirationInDays": 30})])},
        "PublicAccessBlockConfiguration": Match.object_like({"BlockPublicAcls": True, "RestrictPublicBuckets": True}),
    })


# ---------------------------------------------------------------- sign-in and HTTPS
def test_cognito_client_uses_code_flow_with_the_cloudfront_callback(template):
    template.has_resource_properties("AWS::Cognito::UserPoolClient", {
        "AllowedOAuthFlows": ["code"], "AllowedOAuthFlowsUserPoolClient": True, "GenerateSecret": True,
        "AllowedOAuthScopes": ["openid", "email", "profile"],
        "CallbackURLs": [{"Fn::Join": ["", ["https://", {"Fn::GetAtt": [Match.any_value(), "DomainName"]},
                                            "/hub/oauth_callback"]]}],
    })
    template.has_resource_properties("AWS::CloudFront::Distribution", {"DistributionConfig": Match.object_like({
        "DefaultCacheBehavior": Match.object_like({"ViewerProtocolPolicy": "redirect-to-https"})})})


def test_without_a_domain_the_load_balancer_admits_only_cloudfront(raw):
    ingress = [r["Properties"] for r in resources(raw, "AWS::EC2::SecurityGroupIngress").values()
               if "SourcePrefixListId" in r["Properties"]]
    assert len(ingress) == 1 and (ingress[0]["FromPort"], ingress[0]["ToPort"]) == (80, 80)
    lookups = [joined(r["Properties"]["Create"]) for r in resources(raw, "Custom::AWS").values()]
    assert any("com.amazonaws.global.cloudfront.origin-facing" in c for c in lookups)
    service = next(joined(r["Properties"]["Manifest"]) for k, r in resources(
        raw, "Custom::AWSCDK-EKS-KubernetesResource").items() if "HubPublicService" in k)
    assert "aws-load-balancer-security-groups" in service and "loadBalancerSourceRanges" not in service
    # One public subnet (daskhub.https.load_balancer_azs: 1): one public address, not one per AZ.
    manifest = next(r["Properties"]["Manifest"] for k, r in resources(
        raw, "Custom::AWSCDK-EKS-KubernetesResource").items() if "HubPublicService" in k)
    subnets = [part for part in manifest["Fn::Join"][1] if isinstance(part, dict) and "publicSubnet" in json.dumps(part)]
    assert "aws-load-balancer-subnets" in service and len(subnets) == 1
    for group in resources(raw, "AWS::EC2::SecurityGroup").values():
        assert not any(rule.get("CidrIp") == "0.0.0.0/0" for rule in group["Properties"].get("SecurityGroupIngress", []))


def test_own_domain_terminates_tls_at_the_load_balancer():
    arn = "arn:aws:acm:us-east-1:123456789012:certificate/0a1b2c3d-1111-2222-3333-444455556666"
    t = daskhub_template(daskhub={"https": {"domain": "hub.example.edu", "certificate_arn": arn}})
    t.resource_count_is("AWS::CloudFront::Distribution", 0)
    t.has_resource_properties("AWS::Cognito::UserPoolClient", {"CallbackURLs": ["https://hub.example.edu/hub/oauth_callback"]})
    manifests = " ".join(joined(r["Properties"]["Manifest"]) for r in t.find_resources("Custom::AWSCDK-EKS-KubernetesResource").values())
    assert arn in manifests and '"port":443' in manifests


def test_releases_wait_for_everything_they_use(raw):
    charts = {r["Properties"]["Chart"]: (logical_id, r) for logical_id, r in
              resources(raw, "Custom::AWSCDK-EKS-HelmChart").items()}
    hub_id, hub = charts["jupyterhub"]
    depends = " ".join(hub["DependsOn"])
    for needed in ("NodegroupCore", "DataAccount", "HeliocloudHomesVolume", "HubDbVolume", "HubPublicService",
                   "EbsCsi", "EfsCsi", "Namespace"):
        assert needed in depends
    # No pod starts on an image tag before CodeBuild has pushed it.
    assert "ResearcherImages" in depends
    # The hub release is the daskhub release's resource (same logical id), upgraded in place.
    assert hub_id == "HubClusterchartChartF712921F"
    assert hub["Properties"]["Release"] == "daskhub" and hub["Properties"]["Namespace"] == "daskhub"
    _, gateway = charts["dask-gateway"]
    # The gateway reads its hub service token from the hub release's secret.
    assert hub_id in gateway["DependsOn"]
    assert gateway["Properties"]["Release"] == "dask-gateway" and gateway["Properties"]["Namespace"] == "daskhub"


def test_outputs_for_researchers_and_admins(template):
    for name in ("HubUrl", "HubLoadBalancer", "ClusterName", "ScratchBucket", "HomeFileSystem"):
        template.has_output(name, Match.any_value())


# ---------------------------------------------------------------- config checks
@pytest.mark.parametrize("sections,message", [
    ({"daskhub": {"endpoint_access": "private"}}, "daskhub.endpoint_access: a private API endpoint needs"),
    ({"daskhub": {"api_allowed_cidrs": ["192.0.2.0/24"]}}, "daskhub.api_allowed_cidrs: restricting"),
    ({"daskhub": {"node_groups": {"user": {"min_size": 5, "max_size": 2}}}}, "node_groups.user.min_size: min_size 5"),
    ({"daskhub": {"node_groups": {"core": {"min_size": 0}}}}, "node_groups.core.min_size"),
    ({"daskhub": {"node_groups": {"core": {"capacity_type": "spot"}}}}, "node_groups.core.capacity_type"),
    ({"daskhub": {"profiles": [{"name": "a", "cpu": 1, "memory_gib": 2, "default": True},
                               {"name": "b", "cpu": 1, "memory_gib": 2, "default": True}]}}, "only one profile"),
    ({"daskhub": {"https": {"domain": "hub.example.edu"}}}, "set both domain and certificate_arn"),
    ({"daskhub": {"kubernetes_version": "1.29"}}, "daskhub.kubernetes_version"),
    ({"daskhub": {"node_groups": {"core": {"instance_types": ["t4g.medium", "t3a.medium"]}}}}, "mixes ARM"),
    ({"daskhub": {"node_groups": {"user": {"instance_types": ["m7g.xlarge"]}}}}, "ARM types only on the core group"),
    ({"daskhub": {"images": {"build": False}}}, "daskhub.images.cpu: images.build is false"),
    ({"daskhub": {"https": {"load_balancer_azs": 0}}}, "daskhub.https.load_balancer_azs"),
    ({"daskhub": {"node_groups": {"dask-worker": {"instance_typ": ["m5.large"]}}}}, "did you mean 'instance_types'"),
])
def test_bad_daskhub_config_is_refused_with_its_path(sections, message):
    with pytest.raises(ConfigError) as error:
        config(**sections)
    assert any(message in line for line in error.value.problems), error.value.problems
