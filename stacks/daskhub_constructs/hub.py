"""How researchers reach and sign in to the hub, and the daskhub Helm release itself.

The hub's public LoadBalancer Service is created here, before the release, so its address is
known first: the Cognito app client's callback URL needs the hub's HTTPS address, and the release
needs the app client. Order: Service -> its LB hostname -> HTTPS address (CloudFront, or the
admin's domain) -> Cognito app client -> Helm release.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_eks_v2 as eks
from constructs import Construct

from heliocloud.daskhub import RELEASE
from stacks.security import acknowledge


class HubEndpoint(Construct):
    """`hub-public`: an NLB in front of the JupyterHub proxy; HTTPS by CloudFront or by the NLB."""

    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, namespace: str,
                 https: dict, after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        tls = bool(https["domain"])
        annotations = {"service.beta.kubernetes.io/aws-load-balancer-type": "nlb"}
        if tls:
            annotations.update({
                "service.beta.kubernetes.io/aws-load-balancer-ssl-cert": https["certificate_arn"],
                "service.beta.kubernetes.io/aws-load-balancer-ssl-ports": "https",
                "service.beta.kubernetes.io/aws-load-balancer-ssl-negotiation-policy":
                    "ELBSecurityPolicy-TLS13-1-2-2021-06",
            })
        port = {"name": "https", "port": 443} if tls else {"name": "http", "port": 80}
        self.service = cluster.add_manifest("HubPublicService", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "hub-public", "namespace": namespace, "annotations": annotations},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "jupyterhub", "component": "proxy", "release": RELEASE},
                "ports": [{**port, "protocol": "TCP", "targetPort": "http"}],
                "loadBalancerSourceRanges": list(https["allowed_cidrs"]),
            },
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
                    "The origin is the hub's load balancer inside the instance; set daskhub.https.domain and "
                    "certificate_arn for TLS all the way to the load balancer")


class HubLogin(Construct):
    """The hub's Cognito app client (OAuth authorization-code flow) in the instance's user pool."""

    def __init__(self, scope: Construct, construct_id: str, *, user_pool: cognito.IUserPool, hub_url: str) -> None:
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
        # The secret is read from Cognito at deploy time and handed to the Helm release; it is
        # never written into the template.
        self.client_secret = self.client.user_pool_client_secret.unsafe_unwrap()


class DaskhubRelease(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, cluster: eks.Cluster, chart: dict, values: dict,
                 after: list[Construct]) -> None:
        super().__init__(scope, construct_id)
        self.chart = cluster.add_helm_chart(
            "Chart", repository=chart["repository"], chart="daskhub", version=chart["version"],
            release=RELEASE, namespace=chart["namespace"], create_namespace=False,
            values=values, wait=True, timeout=cdk.Duration.minutes(15),
        )
        for dependency in after:
            self.chart.node.add_dependency(dependency)
