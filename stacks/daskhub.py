"""Daskhub: EKS with JupyterHub and Dask Gateway, CPU/GPU bursting, in one `cdk deploy`.

Researchers sign in with their instance account, get a notebook sized from a profile, and burst
onto Dask clusters whose workers land on spot node groups that scale from and back to zero.
Idle, the hub costs the EKS control plane, one small on-demand core node, its load balancer and
storage; everything else appears when someone works (docs/admin/daskhub.md has the figures).
"""
from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from heliocloud import daskhub as hub
from heliocloud.config import InstanceConfig
from stacks.auth import AuthStack
from stacks.daskhub_constructs.addons import ClusterAddons
from stacks.daskhub_constructs.cluster import HubCluster
from stacks.daskhub_constructs.hub import HubEndpoint, HubLogin, HubReleases
from stacks.daskhub_constructs.images import ResearcherImages
from stacks.daskhub_constructs.node_groups import NodeGroups
from stacks.daskhub_constructs.storage import DataAccess, SharedStorage
from stacks.network import NetworkStack


class DaskhubStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InstanceConfig, network: NetworkStack,
                 auth: AuthStack, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"HelioCloud {config.name}: Daskhub (EKS, JupyterHub, "
                                                          "Dask Gateway)", **kwargs)
        # IAM's native OIDC provider resource for IRSA (instead of CDK's deprecated custom resource).
        self.node.set_context("@aws-cdk/aws-eks:useNativeOidcProvider", True)
        settings = config.daskhub
        namespace = settings["charts"]["namespace"]

        cluster_name = f"{config.name}-daskhub"
        cluster = HubCluster(
            self, "HubCluster",
            cluster_name=cluster_name,
            kubernetes_version=settings["kubernetes_version"],
            private_endpoint=settings["endpoint_access"] == "private",
            api_allowed_cidrs=settings["api_allowed_cidrs"],
            admin_role_arns=settings["admin_role_arns"],
            log_retention_days=settings["control_plane_log_retention_days"],
            vpc=network.vpc, subnets=network.workload_subnets,
        ).cluster
        nodes = NodeGroups(self, "NodeGroups", cluster=cluster, specs=hub.node_groups(settings),
                           subnets=network.workload_subnets, kubernetes_version=settings["kubernetes_version"])
        core = nodes.groups["core"]
        addons = ClusterAddons(self, "Addons", cluster=cluster, cluster_name=cluster_name,
                               kubernetes_version=settings["kubernetes_version"],
                               scale_down_unneeded_minutes=settings["scale_down_unneeded_minutes"])
        # Add-ons report healthy only once their pods run, so a node must exist first.
        for addon in (addons.autoscaler, addons.gpu_plugin, *addons.csi_drivers):
            addon.node.add_dependency(core)

        ns = cluster.add_manifest("Namespace", {"apiVersion": "v1", "kind": "Namespace",
                                                "metadata": {"name": namespace}})
        storage = SharedStorage(self, "Storage", cluster=cluster, vpc=network.vpc, subnets=network.workload_subnets,
                                namespace=namespace, after=[ns])
        data = DataAccess(self, "DataAccess", cluster=cluster, namespace=namespace,
                          read_buckets=[b["name"] for b in config.registry["buckets"]] + settings["extra_read_buckets"],
                          scratch_expiry_days=settings["scratch_expiry_days"], after=[ns])

        endpoint = HubEndpoint(self, "HubEndpoint", cluster=cluster, vpc=network.vpc, namespace=namespace,
                               https=settings["https"], after=[ns, core])
        login = HubLogin(self, "HubLogin", user_pool=auth.user_pool, hub_url=endpoint.url, cluster=cluster,
                         namespace=namespace)
        # The HelioCloud images, built in the account (or the admin's own pinned images).
        images = (ResearcherImages(self, "ResearcherImages", repository_name=f"{config.name}-researcher")
                  if settings["images"]["build"] else None)
        image_repository = images.repository.repository_uri if images else hub.LOCAL_IMAGE_REPOSITORY
        wiring = hub.HubWiring(hub_url=endpoint.url, cognito_url=auth.domain.base_url(),
                               client_id=login.client.user_pool_client_id, scratch_bucket=data.scratch.bucket_name,
                               region=self.region, client_secret_arn=login.client_secret.secret_arn,
                               hub_role_arn=login.hub_role.role_arn, image_repository=image_repository)
        HubReleases(self, "Daskhub", cluster=cluster, charts=settings["charts"],
                    hub_values=hub.hub_values(settings, admins=config.auth["admins"] + settings["admin_users"],
                                              wiring=wiring),
                    gateway_values=hub.gateway_values(settings, region=self.region, image_repository=image_repository),
                    after=[ns, core, data.account, *storage.claims.values(), *addons.csi_drivers, endpoint.service,
                           *([images.ready] if images else [])])

        cdk.CfnOutput(self, "HubUrl", value=endpoint.url, description="JupyterHub (sign in with your instance account)")
        cdk.CfnOutput(self, "HubLoadBalancer", value=endpoint.load_balancer.value,
                      description="Load balancer of the hub (CNAME target when daskhub.https.domain is set)")
        cdk.CfnOutput(self, "ClusterName", value=cluster.cluster_name, description="EKS cluster (heliocloud doctor)")
        cdk.CfnOutput(self, "ScratchBucket", value=data.scratch.bucket_name,
                      description="Per-user scratch: s3://<bucket>/users/<user>/")
        if images:
            cdk.CfnOutput(self, "ResearcherImageRepository", value=images.repository.repository_uri,
                          description=f"ECR repository of the researcher images (tags {', '.join(images.tags.values())})")
        cdk.CfnOutput(self, "HomeFileSystem", value=storage.file_system.file_system_id,
                      description="EFS with homes, shared folder and hub database (retained on delete)")
