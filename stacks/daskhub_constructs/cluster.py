"""The EKS cluster: control plane, encryption, logs, API access, kubectl/helm provider.

Built with ``aws_eks_v2`` rather than ``aws_eks``: the control plane is a native
``AWS::EKS::Cluster`` (CloudFormation creates and upgrades it; no custom-resource Lambda owns the
cluster), and API access uses EKS access entries instead of the aws-auth ConfigMap. Auto Mode is
off (``DefaultCapacityType.NODEGROUP``, no default capacity): the five managed node groups, with
their labels, taints and scale-from-zero tags, are what JupyterHub and Dask Gateway expect. The
kubectl provider (needed for manifests and Helm releases) uses the pinned kubectl v1.35 layer.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk.lambda_layer_kubectl_v35 import KubectlV35Layer
from constructs import Construct

from stacks.network import RETENTION_DAYS
from stacks.security import acknowledge

LOG_TYPES = [eks.ClusterLoggingTypes.API, eks.ClusterLoggingTypes.AUDIT, eks.ClusterLoggingTypes.AUTHENTICATOR,
             eks.ClusterLoggingTypes.CONTROLLER_MANAGER, eks.ClusterLoggingTypes.SCHEDULER]


class HubCluster(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cluster_name: str, kubernetes_version: str,
                 private_endpoint: bool, api_allowed_cidrs: list[str], admin_role_arns: list[str],
                 log_retention_days: int, vpc: ec2.IVpc, subnets: ec2.SubnetSelection) -> None:
        super().__init__(scope, construct_id)
        self.cluster_name = cluster_name
        # EKS writes control-plane logs here; creating the group first sets its retention.
        self.logs = logs.LogGroup(self, "ControlPlaneLogs", log_group_name=f"/aws/eks/{cluster_name}/cluster",
                                  retention=RETENTION_DAYS[log_retention_days],
                                  removal_policy=cdk.RemovalPolicy.DESTROY)
        self.secrets_key = kms.Key(self, "SecretsKey", enable_key_rotation=True,
                                   description=f"{cluster_name}: envelope encryption of Kubernetes secrets")
        # Whoever may assume this role (account admins) is cluster-admin; `cdk deploy` prints the
        # `aws eks update-kubeconfig --role-arn ...` command for it.
        self.admin_role = iam.Role(self, "AdminRole", assumed_by=iam.AccountRootPrincipal(),
                                   description=f"cluster-admin of EKS cluster {cluster_name}")
        endpoint = eks.EndpointAccess.PRIVATE if private_endpoint else eks.EndpointAccess.PUBLIC_AND_PRIVATE
        # A restricted public endpoint would shut out the deploy-time kubectl function too, so it
        # then runs inside the VPC (the config check demands NAT for that).
        in_vpc = private_endpoint or api_allowed_cidrs != ["0.0.0.0/0"]
        if not private_endpoint and in_vpc:
            endpoint = endpoint.only_from(*api_allowed_cidrs)
        workload_subnets = vpc.select_subnets(**_selection_kwargs(subnets)).subnets
        self.cluster = eks.Cluster(
            self, "Cluster",
            cluster_name=cluster_name,
            version=eks.KubernetesVersion.of(kubernetes_version),
            vpc=vpc,
            vpc_subnets=[subnets],
            endpoint_access=endpoint,
            default_capacity_type=eks.DefaultCapacityType.NODEGROUP,
            default_capacity=0,
            cluster_logging=LOG_TYPES,
            secrets_encryption_key=self.secrets_key,
            masters_role=self.admin_role,
            kubectl_provider_options=eks.KubectlProviderOptions(
                kubectl_layer=KubectlV35Layer(self, "KubectlLayer"),
                private_subnets=workload_subnets if in_vpc else None,
            ),
        )
        self.cluster.node.add_dependency(self.logs)
        for index, arn in enumerate(admin_role_arns):
            self.cluster.grant_cluster_admin(f"Admin{index}", arn)
        self._acknowledge(private_endpoint)

    def _acknowledge(self, private_endpoint: bool) -> None:
        if not private_endpoint:
            acknowledge(self.cluster, "AwsSolutions-EKS1",
                        "The public API endpoint is the admin's choice (daskhub.endpoint_access), restricted to "
                        "daskhub.api_allowed_cidrs and always IAM-authenticated; private needs a NAT gateway")
        acknowledge(self.cluster, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEKSClusterPolicy]",
                    "The EKS service role must carry the AWS-managed AmazonEKSClusterPolicy, which AWS maintains "
                    "as EKS gains features")
        acknowledge(self.cluster, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's kubectl provider functions log to CloudWatch with the AWS-managed basic execution policy")
        acknowledge(self.cluster, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]",
                    "CDK's kubectl provider function in the VPC (private endpoint) needs ENI management rights")
        acknowledge(self.cluster, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly]",
                    "CDK's kubectl provider function pulls Helm charts from OCI registries with the AWS-managed "
                    "read-only ECR policy")
        acknowledge(self.cluster, _ECR_PUBLIC_FINDING,
                    "CDK's kubectl provider function may pull public OCI charts with the AWS-managed ECR Public "
                    "read-only policy (only in regions where ECR Public exists)")
        acknowledge(self.cluster, f"AwsSolutions-IAM5[Resource::<{_logical_id(self.cluster, 'KubectlProvider/Handler')}.Arn>:*]",
                    "CDK's provider framework invokes any version of its own kubectl handler function")
        acknowledge(self.cluster, "AwsSolutions-IAM5[Resource::*]",
                    "CDK's kubectl provider framework invokes its own handler versions and describes the cluster; "
                    "the generated policy uses wildcards CDK controls")
        acknowledge(self.cluster, "AwsSolutions-L1",
                    "The kubectl provider functions are CDK's own, pinned to the runtime this CDK version ships")


_ECR_PUBLIC_FINDING = (
    'AwsSolutions-IAM4[Policy::{"Fn::If":["HubClusterKubectlProviderHandlerHasEcrPublicB3517B6D",{"Fn::Join":'
    '["",["arn:",{"Ref":"AWS::Partition"},":iam::aws:policy/AmazonElasticContainerRegistryPublicReadOnly"]]},'
    '{"Ref":"AWS::NoValue"}]}]')


def _logical_id(scope: Construct, path: str) -> str:
    """The CloudFormation logical id of a CDK-generated resource below ``scope`` (for finding ids)."""
    resource = scope.node.find_child(path.split("/")[0])
    for part in path.split("/")[1:]:
        resource = resource.node.find_child(part)
    stack = cdk.Stack.of(scope)
    return stack.resolve(stack.get_logical_id(resource.node.default_child))


def _selection_kwargs(selection: ec2.SubnetSelection) -> dict:
    return {k: getattr(selection, k) for k in ("subnet_type", "subnet_group_name", "subnets", "one_per_az",
                                                "availability_zones") if getattr(selection, k, None) is not None}

