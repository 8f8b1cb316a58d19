"""The managed node groups, and the ASG tags that let the cluster autoscaler scale them from zero.

EKS tags each group's Auto Scaling group for autoscaler auto-discovery itself, but tags set on a
managed node group are not copied to its ASG, and an empty group has no node for the autoscaler
to learn labels, taints and GPUs from. So after each group exists, a custom resource looks up its
ASG and writes the `k8s.io/cluster-autoscaler/node-template/...` tags there.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import custom_resources as cr
from constructs import Construct

from heliocloud.daskhub import NodeGroupSpec
from stacks.security import acknowledge

_EFFECT = {"NoSchedule": eks.TaintEffect.NO_SCHEDULE, "NoExecute": eks.TaintEffect.NO_EXECUTE,
           "PreferNoSchedule": eks.TaintEffect.PREFER_NO_SCHEDULE}
_AMI = {(False, False): eks.NodegroupAmiType.AL2023_X86_64_STANDARD,
        (False, True): eks.NodegroupAmiType.AL2023_X86_64_NVIDIA,
        (True, False): eks.NodegroupAmiType.AL2023_ARM_64_STANDARD,
        (True, True): eks.NodegroupAmiType.AL2023_ARM_64_NVIDIA}
NODE_POLICIES = ["AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryReadOnly", "AmazonEKS_CNI_Policy",
                 "AmazonSSMManagedInstanceCore"]


class NodeGroups(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, specs: list[NodeGroupSpec],
                 subnets: ec2.SubnetSelection, kubernetes_version: str) -> None:
        super().__init__(scope, construct_id)
        self.node_role = iam.Role(self, "NodeRole", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
                                  managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(p)
                                                    for p in NODE_POLICIES])
        for policy in NODE_POLICIES:
            acknowledge(self.node_role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                        f"EKS nodes need the AWS-managed {policy} (kubelet registration, image pulls, pod "
                        "networking, Session Manager access instead of SSH); AWS keeps it current")
        self.groups: dict[str, eks.Nodegroup] = {}
        for spec in specs:
            group = cluster.add_nodegroup_capacity(
                _camel(spec.name),
                instance_types=[ec2.InstanceType(t) for t in spec.instance_types],
                ami_type=_AMI[(spec.arm64, spec.gpu)],
                capacity_type=eks.CapacityType.SPOT if spec.spot else eks.CapacityType.ON_DEMAND,
                min_size=spec.min_size,
                max_size=spec.max_size,
                disk_size=spec.disk_size_gib,
                labels=spec.labels,
                taints=[eks.TaintSpec(key=t["key"], value=t["value"], effect=_EFFECT[t["effect"]]) for t in spec.taints],
                subnets=subnets,
                node_role=self.node_role,
                tags={"heliocloud:node-group": spec.name},
            )
            # Nodes follow the control plane: raising daskhub.kubernetes_version upgrades the cluster,
            # then rolls each group onto the matching AMI in the same deploy.
            group.node.default_child.add_property_override("Version", kubernetes_version)
            self.groups[spec.name] = group
            _tag_asg_for_scale_from_zero(self, spec, cluster, group)


def _tag_asg_for_scale_from_zero(scope: Construct, spec: NodeGroupSpec, cluster: eks.Cluster,
                                 group: eks.Nodegroup) -> None:
    name = _camel(spec.name)
    call = cr.AwsSdkCall(
        service="EKS", action="describeNodegroup",
        parameters={"clusterName": cluster.cluster_name, "nodegroupName": group.nodegroup_name},
        physical_resource_id=cr.PhysicalResourceId.of(group.nodegroup_name),
        output_paths=["nodegroup.resources.autoScalingGroups.0.name"],
    )
    lookup = cr.AwsCustomResource(
        scope, f"{name}AsgLookup", on_create=call, on_update=call, install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements([
            iam.PolicyStatement(actions=["eks:DescribeNodegroup"], resources=[group.nodegroup_arn])]),
    )
    asg_name = lookup.get_response_field("nodegroup.resources.autoScalingGroups.0.name")
    tag_call = cr.AwsSdkCall(
        service="AutoScaling", action="createOrUpdateTags",
        parameters={"Tags": [{"ResourceId": asg_name, "ResourceType": "auto-scaling-group", "Key": key,
                              "Value": value, "PropagateAtLaunch": False}
                             for key, value in sorted(spec.autoscaler_tags().items())]},
        physical_resource_id=cr.PhysicalResourceId.of(f"{spec.name}-node-template-tags"),
    )
    stack = cdk.Stack.of(scope)
    tagger = cr.AwsCustomResource(
        scope, f"{name}AsgTags", on_create=tag_call, on_update=tag_call, install_latest_aws_sdk=False,
        policy=cr.AwsCustomResourcePolicy.from_statements([iam.PolicyStatement(
            actions=["autoscaling:CreateOrUpdateTags"],
            # EKS names a node group's ASG eks-<node group name>-<uuid>, unknown until it exists;
            # the tag condition keeps the grant to this cluster's groups.
            resources=[f"arn:{stack.partition}:autoscaling:{stack.region}:{stack.account}:autoScalingGroup:*:"
                       f"autoScalingGroupName/eks-*"],
            conditions={"StringEquals": {"aws:ResourceTag/eks:cluster-name": cluster.cluster_name}},
        )]),
    )
    acknowledge(tagger, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/eks-*]",
                "EKS names a node group's ASG with a generated suffix; the grant is limited to ASGs tagged with "
                "this cluster's name and to writing tags")
    singleton = stack.node.try_find_child(_AWS_CUSTOM_RESOURCE_FUNCTION)
    acknowledge(singleton, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's AwsCustomResource function logs to CloudWatch with the AWS-managed basic execution policy")


# The id CDK gives the one function behind every AwsCustomResource of a stack.
_AWS_CUSTOM_RESOURCE_FUNCTION = "AWS679f53fac002430cb0da5b7982bd2287"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
