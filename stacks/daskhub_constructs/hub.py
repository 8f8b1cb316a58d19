"""How researchers reach and sign in to the hub, and the hub and gateway Helm releases.

The hub's public LoadBalancer Service is created here, before the release, so its address is
known first: the Cognito app client's callback URL needs the hub's HTTPS address, and the release
needs the app client. Order: Service -> its LB hostname -> HTTPS address (CloudFront, or the
admin's domain) -> Cognito app client -> Helm releases.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_eks_v2 as eks
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct

from heliocloud.daskhub import GATEWAY_RELEASE, HUB_RELEASE
from stacks.daskhub_constructs.irsa import irsa_role
from stacks.security import acknowledge

CLOUDFRONT_PREFIX_LIST = "com.amazonaws.global.cloudfront.origin-facing"


class HubEndpoint(Construct):
    """`hub-public`, the load balancer in front of the JupyterHub proxy, and HTTPS in front of it.

    With the admin's domain: a TLS-terminating NLB open to `https.allowed_cidrs` on 443. Without:
    CloudFront gives the HTTPS address, and the load balancer (a classic ELB, the kind whose
    security group Kubernetes lets us choose) admits only CloudFront's origin-facing addresses.
    """

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, vpc: ec2.IVpc,
                 namespace: str, https: dict, after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        tls = bool(https["domain"])
        # Kubernetes would put the load balancer (and a public address) in every public subnet;
        # the configured number of AZs is enough (daskhub.https.load_balancer_azs).
        subnets = {"service.beta.kubernetes.io/aws-load-balancer-subnets":
                   ",".join(s.subnet_id for s in vpc.public_subnets[:https["load_balancer_azs"]])}
        if tls:
            annotations = {
                "service.beta.kubernetes.io/aws-load-balancer-type": "nlb",
                "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": https["certificate_arn"],
                "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "https",
                "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy":
                    "ELBSecurityPolicy-TLS13-1-2-2021-06",
            }
            spec = {"ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": "http"}],
                    "loadBalancerSourceRanges": list(https["allowed_cidrs"])}
        else:
            self.security_group = self._cloudfront_only_security_group(vpc)
            annotations = {"service.beta.kubernetes.io/aws-load-balancer-security-groups":
                           self.security_group.security_group_id}
            spec = {"ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}
        self.service = cluster.add_manifest("HubPublicService", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hub-public", "namespace": namespace, "annotations": {**annotations, **subnets}},
            "spec": {"type": "LoadBalancer",
                     "selector": {"app": "jupyterhub", "component": "proxy", "release": HUB_RELEASE}, **spec},
        })
        for dependency in after:
            self.service.node.add_dependency(dependency)
        self.load_balancer = eks.KubernetesObjectValue(
            self, "LoadBalancerHost", cluster=cluster, object_type="service", object_name="hub-public",
            object_namespace=namespace, json_path=".status.loadBalancer.ingress[0].hostname",
            timeout=cdk.Duration.minutes(10))
        self.load_balancer.node.add_dependency(self.service)
        if tls:
            self.url = f"https://{https['domain']}"
            return
        self.distribution = cloudfront.Distribution(
            self, "Cdn",
            comment=f"HTTPS address of the JupyterHub of {cluster.cluster_name}",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin(self.load_balancer.value,
                                          protocol_policy=cloudfront.OriginProtocolPolicy.HTTP_ONLY,
                                          read_timeout=cdk.Duration.seconds(60)),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                # The hub and notebook servers compare Origin with Host (XSRF, websockets): forward
                # the viewer's Host so both say <id>.cloudfront.net.
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER,
            ),
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            minimum_protocol_version=cloudfront.SecurityPolicyProtocol.TLS_V1_2_2021,
        )
        self.url = f"https://{self.distribution.distribution_domain_name}"
        d = self.distribution
        acknowledge(d, "AwsSolutions-CFR1", "The hub serves researchers wherever they are; sign-in is the gate")
        acknowledge(d, "AwsSolutions-CFR2",
                    "No WAF web ACL: a WAF costs a fixed monthly fee and the hub admits only signed-in users")
        acknowledge(d, "AwsSolutions-CFR3",
                    "The hub logs every request itself; CloudFront access logs would duplicate them at a cost")
        acknowledge(d, "AwsSolutions-CFR4",
                    "The default cloudfront.net certificate is used (no domain configured); viewers get TLS 1.2+ "
                    "from CloudFront's default policy for that certificate")
        acknowledge(d, "AwsSolutions-CFR5",
                    "The origin is the hub's load balancer, which admits only CloudFront's addresses; set "
                    "daskhub.https.domain and certificate_arn for TLS all the way to the load balancer")


    def _cloudfront_only_security_group(self, vpc: ec2.IVpc) -> ec2.SecurityGroup:
        """Port 80 from CloudFront's origin-facing managed prefix list only (its id differs per
        region, so it is looked up at deploy time)."""
        lookup = cr.AwsSdkCall(
            service="EC2", action="describeManagedPrefixLists",
            parameters={"Filters": [{"Name": "prefix-list-name", "Values": [CLOUDFRONT_PREFIX_LIST]}]},
            physical_resource_id=cr.PhysicalResourceId.of(CLOUDFRONT_PREFIX_LIST),
            output_paths=["PrefixLists.0.PrefixListId"],
        )
        prefix_list = cr.AwsCustomResource(
            self, "CloudFrontPrefixList", on_create=lookup, on_update=lookup, install_latest_aws_sdk=False,
            policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE))
        acknowledge(prefix_list, "AwsSolutions-IAM5[Resource::*]",
                    "DescribeManagedPrefixLists is a read-only call that supports no resource scoping")
        group = ec2.SecurityGroup(self, "LoadBalancerSecurityGroup", vpc=vpc, allow_all_outbound=True,
                                  description="Hub load balancer: HTTP from CloudFront only")
        group.add_ingress_rule(ec2.Peer.prefix_list(prefix_list.get_response_field("PrefixLists.0.PrefixListId")),
                               ec2.Port.tcp(80), "CloudFront origin-facing addresses")
        return group


class HubLogin(Construct):
    """The hub's Cognito app client (OAuth authorization-code flow) in the instance's user pool,
    its secret kept in Secrets Manager, and the IAM role the hub pod reads it with.

    The secret goes from Cognito to Secrets Manager inside CloudFormation (the client's
    `ClientSecret` attribute): no template, custom-resource property or log ever holds it; the
    hub's init container fetches it at start (heliocloud.daskhub.client_secret_fetcher)."""

    def __init__(self, scope: Construct, construct_id: str, *, user_pool: cognito.IUserPool, hub_url: str,
                 cluster: eks.Cluster, namespace: str) -> None:
        super().__init__(scope, construct_id)
        self.client = cognito.UserPoolClient(
            self, "Client", user_pool=user_pool, user_pool_client_name="daskhub",
            generate_secret=True,
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[f"{hub_url}/hub/oauth_callback"],
                logout_urls=[hub_url],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            id_token_validity=cdk.Duration.hours(1),
            refresh_token_validity=cdk.Duration.days(1),
        )
        cfn_client: cognito.CfnUserPoolClient = self.client.node.default_child
        self.client_secret = secretsmanager.Secret(
            self, "ClientSecret", description="Cognito app client secret of the JupyterHub (read by the hub pod)",
            secret_string_value=cdk.SecretValue.resource_attribute(cfn_client.attr_client_secret),
            removal_policy=cdk.RemovalPolicy.DESTROY)
        acknowledge(self.client_secret, "AwsSolutions-SMG4",
                    "The value is Cognito's app client secret, which Cognito issues; it changes by replacing "
                    "the app client (a redeploy), not by a Secrets Manager rotation function")
        self.hub_role = irsa_role(self, "HubRole", cluster=cluster, namespace=namespace, service_account="hub",
                                  description="JupyterHub pod: reads its Cognito client secret")
        self.client_secret.grant_read(self.hub_role)


class HubReleases(Construct):
    """The two Helm releases: JupyterHub (release `daskhub`, see heliocloud.daskhub.HUB_RELEASE) and
    Dask Gateway, which reads its hub service token from the hub release's secret."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, charts: dict,
                 hub_values: dict, gateway_values: dict, after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        namespace = charts["namespace"]
        hub_chart, gateway_chart = charts["jupyterhub"], charts["dask_gateway"]
        # The construct id "Chart" is the daskhub release's: the hub release is that same resource
        # upgraded in place onto the jupyterhub chart.
        self.hub = cluster.add_helm_chart(
            "Chart", repository=hub_chart["repository"], chart="jupyterhub", version=hub_chart["version"],
            release=HUB_RELEASE, namespace=namespace, create_namespace=False,
            values=hub_values, wait=True, timeout=cdk.Duration.minutes(15),
        )
        self.gateway = cluster.add_helm_chart(
            "GatewayChart", repository=gateway_chart["repository"], chart="dask-gateway",
            version=gateway_chart["version"], release=GATEWAY_RELEASE, namespace=namespace, create_namespace=False,
            values=gateway_values, wait=True, timeout=cdk.Duration.minutes(10),
        )
        self.gateway.node.add_dependency(self.hub)
        for dependency in after:
            self.hub.node.add_dependency(dependency)
