"""Portal: self-service research VMs with per-user spend, budgets and real isolation.

browser ─► CloudFront (static UI; /api/* ─► HTTP API with Cognito JWT authorizer) ─► API Lambda
        ─► EC2 as the actor role (session tag Owner=<sub>) ─► DynamoDB (ownership, ledger, budgets)
EC2 state changes ─► ledger Lambda; nightly ─► Cost Explorer reconcile; every 5 min ─► enforcer
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_iam as iam
from constructs import Construct

from hc_portal import settings as portal_settings
from heliocloud.config import InstanceConfig
from stacks.auth import AuthStack
from stacks.network import NetworkStack
from hc_portal.launch import PORTAL_TAG
from stacks.portal_backend import Ec2ActorRole, PortalApi, PortalFunctions, PortalSchedules, PortalTables, VmAccess, ec2_arn
from stacks.portal_web import PortalWebsite
from stacks.security import acknowledge

# Lambda allows 4 KB of environment in total; the settings document must leave room for the rest.
MAX_SETTINGS_BYTES = 3500


class PortalStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InstanceConfig, network: NetworkStack,
                 auth: AuthStack, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"HelioCloud {config.name}: researcher portal", **kwargs)
        portal = config.portal
        tables = PortalTables(self, "Tables")
        where = network.workload_subnets
        subnet_ids = network.vpc.select_subnets(subnet_type=where.subnet_type, subnet_group_name=where.subnet_group_name,
                                                availability_zones=where.availability_zones).subnet_ids
        vms = VmAccess(self, "Vms", vpc=network.vpc, ssh_cidrs=portal["ssh_cidrs"],
                       data_buckets=[b["name"] for b in config.registry["buckets"]])

        # Settings reference the actor role, which trusts the API function's role: create the
        # functions first, then hand them the settings.
        functions = PortalFunctions(self, "Functions", environment={**tables.environment, "PORTAL_SETTINGS": "{}"})
        actor = Ec2ActorRole(self, "Ec2Actor", portal=portal, subnet_ids=subnet_ids, security_group=vms.security_group,
                             vm_role=vms.role, assumed_by=functions["Api"].role)
        settings_doc = portal_settings.document(
            portal, portal_name=config.name, subnet_ids=subnet_ids, security_group_id=vms.security_group.security_group_id,
            instance_profile_arn=vms.instance_profile.instance_profile_arn, actor_role_arn=actor.role.role_arn)
        settings_json = self.to_json_string(settings_doc)
        if len(str(settings_doc)) > MAX_SETTINGS_BYTES:
            raise ValueError(f"portal settings are {len(str(settings_doc))} bytes; trim images or instance_types "
                             f"(Lambda environment limit)")
        for fn in functions.functions.values():
            fn.add_environment("PORTAL_SETTINGS", settings_json)
        self._grant(config, portal, tables, functions, actor, vms)

        PortalSchedules(self, "Schedules", ledger=functions["Ledger"], reconcile=functions["Reconcile"],
                        enforcer=functions["Enforcer"])
        api = PortalApi(self, "Api", handler=functions["Api"])
        cognito_domain = auth.domain.base_url()
        web = PortalWebsite(self, "Web", api_domain=api.domain_name, cognito_domain=cognito_domain)
        client = cognito.UserPoolClient(
            self, "AppClient", user_pool=auth.user_pool, user_pool_client_name=f"{config.name}-portal",
            generate_secret=False, prevent_user_existence_errors=True,
            auth_flows=cognito.AuthFlow(user_srp=True),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[web.url], logout_urls=[web.url]),
            id_token_validity=cdk.Duration.hours(1), access_token_validity=cdk.Duration.hours(1),
            refresh_token_validity=cdk.Duration.days(1),
        )
        api.add_routes(user_pool=auth.user_pool, client=client)
        web.deploy(client_id=client.user_pool_client_id, cognito_domain=cognito_domain)

        cdk.CfnOutput(self, "PortalUrl", value=web.url, description="Researcher portal (sign in with your HelioCloud account)")
        cdk.CfnOutput(self, "ApiUrl", value=api.http_api.api_endpoint, description="Portal JSON API (Cognito JWT)")
        cdk.CfnOutput(self, "AppClientId", value=client.user_pool_client_id, description="Portal app client")
        cdk.CfnOutput(self, "VmSecurityGroup", value=vms.security_group.security_group_id, description="Security group of user VMs")

    def _grant(self, config, portal, tables: PortalTables, functions: PortalFunctions, actor: Ec2ActorRole,
               vms: VmAccess) -> None:
        t = tables.tables
        api, ledger, reconcile, enforcer = (functions[n] for n in ("Api", "Ledger", "Reconcile", "Enforcer"))
        for table in t.values():
            table.grant_read_write_data(api)
        t["instances"].grant_read_write_data(ledger)
        t["ledger"].grant_read_write_data(ledger)
        t["budgets"].grant_read_write_data(reconcile)
        t["instances"].grant_read_write_data(enforcer)
        t["ledger"].grant_read_data(enforcer)
        t["budgets"].grant_read_data(enforcer)
        actor.role.grant_assume_role(api.role)
        api.add_to_role_policy(iam.PolicyStatement(actions=["sts:TagSession"], resources=[actor.role.role_arn]))
        describe = iam.PolicyStatement(actions=["ec2:DescribeInstances", "ec2:DescribeKeyPairs", "ec2:DescribeImages"],
                                       resources=["*"])
        api.add_to_role_policy(describe)
        params = [i["ssm_parameter"] for i in portal["images"] if i.get("ssm_parameter")]
        if params:
            api.add_to_role_policy(iam.PolicyStatement(actions=["ssm:GetParameter"], resources=[
                f"arn:{cdk.Aws.PARTITION}:ssm:{cdk.Aws.REGION}::parameter{p}" for p in params]))
        enforcer.add_to_role_policy(iam.PolicyStatement(actions=["ec2:DescribeInstances", "cloudwatch:GetMetricStatistics"],
                                                        resources=["*"]))
        enforcer.add_to_role_policy(iam.PolicyStatement(
            actions=["ec2:StopInstances"], resources=[ec2_arn("instance/*")],
            conditions={"StringEquals": {f"aws:ResourceTag/{PORTAL_TAG}": config.name}}))
        reconcile.add_to_role_policy(iam.PolicyStatement(actions=["ce:GetCostAndUsage"], resources=["*"]))

        for fn, reason in ((api, "EC2 Describe* calls support no resource-level permissions; writes go through the actor role"),
                           (enforcer, "EC2 DescribeInstances and CloudWatch GetMetricStatistics support no resource-level permissions"),
                           (reconcile, "Cost Explorer GetCostAndUsage supports no resource-level permissions")):
            acknowledge(fn.role, "AwsSolutions-IAM5[Resource::*]", reason)
        acknowledge(enforcer.role, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
                    "the enforcer may stop any instance tagged with this portal (condition on the heliocloud:portal tag) and nothing else")
        for fn in (api, ledger, reconcile, enforcer):
            for logical, table in t.items():
                acknowledge(fn.role, f"AwsSolutions-IAM5[Resource::<{self.get_logical_id(table.node.default_child)}.Arn>/index/*]",
                            "DynamoDB grants include the table's own indexes (the by-instance lookup for EC2 events)")
