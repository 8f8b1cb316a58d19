"""Storage: EFS for home directories, a shared folder and the hub's database; the scratch bucket;
and the IRSA service account through which notebooks and Dask workers reach S3."""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_efs as efs
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from heliocloud.daskhub import DATA_SERVICE_ACCOUNT
from stacks.security import acknowledge

# The notebook image's user (jovyan) is uid 1000, gid 100; the hub runs as 1000:1000.
_VOLUMES = {
    # claim name: (access point path, uid, gid, permissions, access mode)
    "heliocloud-homes": ("/homes", "1000", "100", "755", "ReadWriteMany"),
    "heliocloud-shared": ("/shared", "1000", "100", "2775", "ReadWriteMany"),
    "hub-db": ("/hub-db", "1000", "1000", "700", "ReadWriteOnce"),
}


class SharedStorage(Construct):
    """One encrypted, retained EFS file system; each volume is an access point that forces the
    notebook user's uid/gid, bound as a static PersistentVolume + claim in the release namespace."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, vpc: ec2.IVpc,
                 subnets: ec2.SubnetSelection, namespace: str, after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        self.file_system = efs.FileSystem(
            self, "FileSystem", vpc=vpc, vpc_subnets=subnets, encrypted=True,
            performance_mode=efs.PerformanceMode.GENERAL_PURPOSE,
            throughput_mode=efs.ThroughputMode.ELASTIC,
            lifecycle_policy=efs.LifecyclePolicy.AFTER_30_DAYS,   # cold files move to cheaper IA storage
            enable_automatic_backups=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,             # researchers' homes outlive the stack
        )
        self.file_system.connections.allow_default_port_from(
            ec2.Peer.security_group_id(cluster.cluster_security_group_id), "NFS from EKS nodes")
        self.claims: dict[str, eks.KubernetesManifest] = {}
        for claim, (path, uid, gid, mode, access) in _VOLUMES.items():
            point = self.file_system.add_access_point(
                _camel(claim), path=path, posix_user=efs.PosixUser(uid=uid, gid=gid),
                create_acl=efs.Acl(owner_uid=uid, owner_gid=gid, permissions=mode))
            manifest = cluster.add_manifest(
                f"{_camel(claim)}Volume",
                {"apiVersion": "v1", "kind": "PersistentVolume",
                 "metadata": {"name": f"{namespace}-{claim}", "labels": {"heliocloud/volume": claim}},
                 "spec": {"capacity": {"storage": "1Ti"}, "accessModes": [access],
                          "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
                          "csi": {"driver": "efs.csi.aws.com",
                                  "volumeHandle": f"{self.file_system.file_system_id}::{point.access_point_id}"}}},
                # hub-db is claimed by the chart (through the label selector), the others here
                *([] if claim == "hub-db" else [
                    {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                     "metadata": {"name": claim, "namespace": namespace},
                     "spec": {"accessModes": [access], "storageClassName": "", "volumeName": f"{namespace}-{claim}",
                              "resources": {"requests": {"storage": "1Ti"}}}}]),
            )
            for dependency in after:
                manifest.node.add_dependency(dependency)
            self.claims[claim] = manifest


class DataAccess(Construct):
    """The `heliocloud-user` service account (IRSA) used by notebooks, Dask schedulers and workers:
    read the instance's data buckets and extra buckets, read/write `users/` in the scratch bucket."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, namespace: str,
                 read_buckets: list[str], scratch_expiry_days: int, after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        self.scratch = s3.Bucket(
            self, "Scratch", encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            lifecycle_rules=[s3.LifecycleRule(expiration=cdk.Duration.days(scratch_expiry_days),
                                              abort_incomplete_multipart_upload_after=cdk.Duration.days(1))],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        acknowledge(self.scratch, "AwsSolutions-S1",
                    "Scratch holds short-lived intermediate results that expire automatically; object-level "
                    "access logs would cost more than the data is worth")
        self.account = cluster.add_service_account("DataAccount", name=DATA_SERVICE_ACCOUNT, namespace=namespace)
        for dependency in after:
            self.account.node.add_dependency(dependency)
        role = self.account.role
        self.scratch.grant_read_write(role, "users/*")
        partition = cdk.Stack.of(self).partition
        if read_buckets:
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=["s3:ListBucket", "s3:GetBucketLocation"],
                resources=[f"arn:{partition}:s3:::{name}" for name in read_buckets]))
            role.add_to_principal_policy(iam.PolicyStatement(
                actions=["s3:GetObject"], resources=[f"arn:{partition}:s3:::{name}/*" for name in read_buckets]))
            for name in read_buckets:
                acknowledge(role, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{name}/*]",
                            f"Notebooks and Dask workers read any object of the data bucket {name}: that is "
                            "what a data bucket is for; nothing is written there")
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:GetObject*]",
                    "CDK's grant of read access to the scratch prefix (GetObject and its version/ACL reads)")
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:GetBucket*]",
                    "CDK's grant of read access to the scratch bucket's own metadata")
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:List*]", "CDK's grant of listing the scratch bucket")
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
                    "Researchers delete their own intermediate results under users/ in scratch")
        acknowledge(role, "AwsSolutions-IAM5[Action::s3:Abort*]", "Large uploads to scratch may need aborting")
        stack = cdk.Stack.of(self)
        scratch_id = stack.resolve(stack.get_logical_id(self.scratch.node.default_child))
        acknowledge(role, f"AwsSolutions-IAM5[Resource::<{scratch_id}.Arn>/users/*]",
                    "Every object under the users/ prefix of the scratch bucket, which holds nothing else")


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
