"""The portal's web front: static UI in a private bucket behind CloudFront (origin access
control, HTTPS only, security headers), with /api/* routed to the HTTP API on the same origin
so the browser needs no CORS."""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from stacks.security import acknowledge

UI_DIR = Path(__file__).resolve().parents[1] / "portal-ui"


class PortalWebsite(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, api_domain: str, cognito_domain: str) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self, "Ui", block_public_access=s3.BlockPublicAccess.BLOCK_ALL, enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED, removal_policy=cdk.RemovalPolicy.DESTROY, auto_delete_objects=False,
        )
        acknowledge(self.bucket, "AwsSolutions-S1",
                    "the bucket holds only the public static UI, read solely by CloudFront; API calls are access-logged at the HTTP API")
        csp = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
               f"connect-src 'self' {cognito_domain}; form-action 'self' {cognito_domain}; frame-ancestors 'none'; base-uri 'none'")
        headers = cloudfront.ResponseHeadersPolicy(
            self, "SecurityHeaders", comment="HelioCloud portal security headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(content_security_policy=csp, override=True),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(frame_option=cloudfront.HeadersFrameOption.DENY, override=True),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.NO_REFERRER, override=True),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=cdk.Duration.days(730), include_subdomains=True, preload=True, override=True),
                xss_protection=cloudfront.ResponseHeadersXSSProtection(protection=True, mode_block=True, override=True),
            ),
        )
        self.distribution = cloudfront.Distribution(
            self, "Cdn", comment="HelioCloud portal", default_root_object="index.html",
            price_class=cloudfront.PriceClass.PRICE_CLASS_100, http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                response_headers_policy=headers,
            ),
            additional_behaviors={"/api/*": cloudfront.BehaviorOptions(
                origin=origins.HttpOrigin(api_domain, protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                origin_request_policy=cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
                response_headers_policy=headers,
            )},
        )
        for finding, reason in (
            ("AwsSolutions-CFR1", "researchers work from every country; geo restriction would lock out collaborators"),
            ("AwsSolutions-CFR2", "every API route needs a Cognito token and the API is throttled; WAF would add a fixed monthly cost to an idle instance"),
            ("AwsSolutions-CFR3", "the distribution serves static files; who did what is logged at the HTTP API with the user's id"),
            ("AwsSolutions-CFR4", "the default CloudFront certificate has no custom domain to pin a TLS policy to; admins adding a domain set TLSv1.2_2021"),
        ):
            acknowledge(self.distribution, finding, reason)
        self.url = f"https://{self.distribution.distribution_domain_name}/"

    def deploy(self, *, client_id: str, cognito_domain: str) -> s3deploy.BucketDeployment:
        """Upload the UI folder as is (no build step) plus config.json with the sign-in settings."""
        deployment = s3deploy.BucketDeployment(
            self, "Deploy", destination_bucket=self.bucket, distribution=self.distribution, distribution_paths=["/*"],
            sources=[s3deploy.Source.asset(str(UI_DIR)),
                     s3deploy.Source.json_data("config.json", {"mode": "cognito", "domain": cognito_domain,
                                                              "client_id": client_id, "redirect_uri": self.url})],
            memory_limit=256,
        )
        stack = cdk.Stack.of(self)
        for child in stack.node.children:
            if child.node.id.startswith("Custom::CDKBucketDeployment"):
                _acknowledge_bucket_deployment(child, ui_bucket=stack.get_logical_id(self.bucket.node.default_child))
        return deployment


def _acknowledge_bucket_deployment(provider, *, ui_bucket: str) -> None:
    """CDK's BucketDeployment provider (a singleton Lambda shared by the stack's deployments)."""
    acknowledge(provider, f"AwsSolutions-IAM5[Resource::<{ui_bucket}.Arn>/*]",
                "CDK's BucketDeployment provider writes every UI file into the UI bucket, whose names change with the UI")
    acknowledge(provider, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-<AWS::Region>/*]",
                "CDK's BucketDeployment provider reads the staged UI asset from the CDK bootstrap bucket, keyed by content hash")
    acknowledge(provider, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                "CDK's own BucketDeployment provider uses the basic execution role; it only writes its logs")
    acknowledge(provider, "AwsSolutions-IAM5[Action::s3:GetBucket*]",
                "CDK's BucketDeployment provider grants bucket reads on the asset and UI buckets it copies between")
    acknowledge(provider, "AwsSolutions-IAM5[Action::s3:GetObject*]",
                "CDK's BucketDeployment provider reads the staged UI asset objects to copy them")
    acknowledge(provider, "AwsSolutions-IAM5[Action::s3:List*]",
                "CDK's BucketDeployment provider lists the UI bucket to prune files no longer in the UI folder")
    acknowledge(provider, "AwsSolutions-IAM5[Action::s3:DeleteObject*]",
                "CDK's BucketDeployment provider deletes UI files that were removed from the folder")
    acknowledge(provider, "AwsSolutions-IAM5[Action::s3:Abort*]",
                "CDK's BucketDeployment provider aborts its own failed multipart uploads to the UI bucket")
    acknowledge(provider, "AwsSolutions-IAM5[Resource::*]",
                "CDK's BucketDeployment provider creates CloudFront invalidations, which support no resource-level scoping")
    acknowledge(provider, "AwsSolutions-L1",
                "the runtime of CDK's BucketDeployment provider is chosen by aws-cdk-lib and upgraded with it")
