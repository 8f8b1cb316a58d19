"""Cluster add-ons installed by the same `cdk deploy`: EBS and EFS CSI drivers (EKS add-ons with
IRSA roles), a default encrypted gp3 storage class, the cluster autoscaler (IRSA, auto-discovery)
and the NVIDIA device plugin on GPU nodes."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from constructs import Construct

from heliocloud.daskhub import NODE_GROUP_LABEL
from stacks.daskhub_constructs.irsa import irsa_role
from stacks.security import acknowledge

# Pinned chart versions; the autoscaler's image follows the cluster's minor version.
AUTOSCALER_CHART = ("https://kubernetes.github.io/autoscaler", "cluster-autoscaler", "9.46.6")
AUTOSCALER_IMAGE = {"1.34": "v1.34.0", "1.35": "v1.35.0"}
NVIDIA_CHART = ("https://nvidia.github.io/k8s-device-plugin", "nvidia-device-plugin", "0.17.1")
CORE = {NODE_GROUP_LABEL: "core"}


class ClusterAddons(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, cluster_name: str,
                 kubernetes_version: str, scale_down_unneeded_minutes: int) -> None:
        super().__init__(scope, construct_id)
        self.csi_drivers = [
            self._csi_driver("Ebs", cluster, "aws-ebs-csi-driver", "ebs-csi-controller-sa",
                             "service-role/AmazonEBSCSIDriverPolicy",
                             # one controller replica: the core node is small and pods are counted
                             {"controller": {"replicaCount": 1, "nodeSelector": CORE}}),
            self._csi_driver("Efs", cluster, "aws-efs-csi-driver", "efs-csi-controller-sa",
                             "service-role/AmazonEFSCSIDriverPolicy", None),
        ]
        self.gp3 = cluster.add_manifest("Gp3StorageClass", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": "gp3", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "ebs.csi.aws.com",
            "parameters": {"type": "gp3", "encrypted": "true"},
            "volumeBindingMode": "WaitForFirstConsumer",
            "allowVolumeExpansion": True,
        })
        self.autoscaler = self._cluster_autoscaler(cluster, cluster_name, kubernetes_version, scale_down_unneeded_minutes)
        repository, chart, version = NVIDIA_CHART
        self.gpu_plugin = cluster.add_helm_chart(
            "NvidiaDevicePlugin", repository=repository, chart=chart, version=version,
            release="nvidia-device-plugin", namespace="kube-system",
            values={
                "nodeSelector": {"heliocloud/gpu": "true"},
                # GPU nodes carry user/worker and GPU taints; the plugin must run on all of them.
                "tolerations": [{"operator": "Exists"}],
                # The chart's default affinity expects Node Feature Discovery labels we do not run;
                # this list replaces its node selector terms.
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "heliocloud/gpu", "operator": "In", "values": ["true"]}]}]}}},
            },
        )

    def _csi_driver(self, name: str, cluster: eks.Cluster, addon: str, service_account: str, policy: str,
                    configuration: dict | None) -> eks.CfnAddon:
        role = irsa_role(self, f"{name}CsiRole", cluster=cluster, namespace="kube-system",
                         service_account=service_account,
                         managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name(policy)])
        acknowledge(role, f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{policy}]",
                    f"The {addon} add-on's documented AWS-managed policy, kept current by AWS as the driver "
                    "gains API calls; only the driver's controller service account can assume this role")
        return eks.CfnAddon(self, f"{name}Csi", addon_name=addon, cluster_name=cluster.cluster_name,
                            service_account_role_arn=role.role_arn, resolve_conflicts="OVERWRITE",
                            configuration_values=cdk.Stack.of(self).to_json_string(configuration)
                            if configuration else None)

    def _cluster_autoscaler(self, cluster: eks.Cluster, cluster_name: str, kubernetes_version: str,
                            unneeded_minutes: int):
        account = cluster.add_service_account("AutoscalerAccount", name="cluster-autoscaler",
                                              namespace="kube-system")
        stack = cdk.Stack.of(self)
        account.add_to_principal_policy(iam.PolicyStatement(
            actions=["autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeAutoScalingInstances",
                     "autoscaling:DescribeLaunchConfigurations", "autoscaling:DescribeScalingActivities",
                     "autoscaling:DescribeTags", "ec2:DescribeImages", "ec2:DescribeInstanceTypes",
                     "ec2:DescribeLaunchTemplateVersions", "ec2:GetInstanceTypesFromInstanceRequirements"],
            resources=["*"]))
        account.add_to_principal_policy(iam.PolicyStatement(
            actions=["eks:DescribeNodegroup"],
            resources=[f"arn:{stack.partition}:eks:{stack.region}:{stack.account}:nodegroup/"
                       f"{cluster_name}/*/*"]))
        account.add_to_principal_policy(iam.PolicyStatement(
            actions=["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
            resources=["*"],
            conditions={"StringEquals": {
                f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}))
        acknowledge(account.role, "AwsSolutions-IAM5[Resource::*]",
                    "Describe calls of the autoscaler support no resource scoping; scaling calls are limited by "
                    "condition to ASGs tagged as owned by this cluster")
        acknowledge(account.role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:eks:<AWS::Region>:<AWS::AccountId>:nodegroup/{cluster_name}/*/*]",
                    "Node groups of this one cluster only; their names carry a suffix EKS generates")
        repository, chart, version = AUTOSCALER_CHART
        release = cluster.add_helm_chart(
            "ClusterAutoscaler", repository=repository, chart=chart, version=version,
            release="cluster-autoscaler", namespace="kube-system",
            values={
                "cloudProvider": "aws",
                "awsRegion": stack.region,
                "autoDiscovery": {"clusterName": cluster_name},
                "image": {"tag": AUTOSCALER_IMAGE[kubernetes_version]},
                "rbac": {"serviceAccount": {"create": False, "name": "cluster-autoscaler"}},
                "nodeSelector": CORE,
                "extraArgs": {
                    "balance-similar-node-groups": True,
                    "expander": "least-waste",
                    "skip-nodes-with-system-pods": False,
                    "skip-nodes-with-local-storage": False,
                    "scale-down-unneeded-time": f"{unneeded_minutes}m",
                    "scale-down-delay-after-add": "5m",
                },
            },
        )
        release.node.add_dependency(account)
        return release
