"""Portal backend constructs: tables, the VMs' network and identity, the EC2 actor role,
the Lambdas, their schedules and the HTTP API."""
from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from hc_portal.api import ROUTES
from hc_portal.launch import OWNER_TAG
from hc_portal.tables import ENV_VARS, TABLES, TTL_ATTRIBUTES
from stacks.security import acknowledge

LAMBDA_ASSET = Path(__file__).resolve().parents[1] / "lambdas" / "portal"
PRINCIPAL_OWNER = "${aws:PrincipalTag/" + OWNER_TAG + "}"


def ec2_arn(resource: str, *, account: bool = True) -> str:
    return f"arn:{cdk.Aws.PARTITION}:ec2:{cdk.Aws.REGION}:{cdk.Aws.ACCOUNT_ID if account else ''}:{resource}"


class PortalTables(Construct):
    """Ownership, spend ledger, budgets: on-demand, point-in-time recovery, kept on stack delete."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.tables: dict[str, dynamodb.Table] = {}
        for logical, (pk, sk, indexes) in TABLES.items():
            table = dynamodb.Table(
                self, logical.capitalize(),
                partition_key=dynamodb.Attribute(name=pk, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=sk, type=dynamodb.AttributeType.STRING) if sk else None,
                billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
                point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                    point_in_time_recovery_enabled=True),
                removal_policy=cdk.RemovalPolicy.RETAIN,
                time_to_live_attribute=TTL_ATTRIBUTES.get(logical),
            )
            for index, key in indexes.items():
                table.add_global_secondary_index(
                    index_name=index, partition_key=dynamodb.Attribute(name=key, type=dynamodb.AttributeType.STRING))
            self.tables[logical] = table

    @property
    def environment(self) -> dict[str, str]:
        return {ENV_VARS[logical]: table.table_name for logical, table in self.tables.items()}


class VmAccess(Construct):
    """What every user VM gets: a security group (SSH only from configured CIDRs), and an
    instance profile with Session Manager and read access to the instance's data buckets."""

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, ssh_cidrs: list[str],
                 data_buckets: list[str]) -> None:
        super().__init__(scope, construct_id)
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=True,
            description="Portal VMs: SSH only from the configured CIDRs; Session Manager needs no inbound port")
        for cidr in ssh_cidrs:
            self.security_group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(22), f"SSH from {cidr}")
        self.role = iam.Role(
            self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description="Portal VMs: Session Manager and read access to the data buckets",
            managed_policies=[iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore")],
        )
        acknowledge(self.role, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
                    "Session Manager access is the AWS-maintained minimum for SSM agents; replicating it by hand would drift")
        if data_buckets:
            bucket_arns = [f"arn:{cdk.Aws.PARTITION}:s3:::{name}" for name in data_buckets]
            self.role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket", "s3:GetBucketLocation"], resources=bucket_arns))
            self.role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[f"{a}/*" for a in bucket_arns]))
            for arn in bucket_arns:
                acknowledge(self.role, f"AwsSolutions-IAM5[Resource::{arn.replace(cdk.Aws.PARTITION, '<AWS::Partition>')}/*]",
                            "VMs read every object of the instance's data buckets; that is what the buckets are for")
        self.instance_profile = iam.InstanceProfile(self, "Profile", role=self.role)


class Ec2ActorRole(Construct):
    """The role the API assumes per request with the session tag Owner=<sub>.

    Start/stop/terminate/delete-key only on resources whose Owner tag equals the session's;
    RunInstances/CreateKeyPair only when the request tags them with it, with allowed types and
    images, encrypted volumes, IMDSv2, the portal's subnets, security group and VM role.
    """

    def __init__(self, scope: Construct, construct_id: str, *, portal: dict, subnet_ids: list[str],
                 security_group: ec2.ISecurityGroup, vm_role: iam.IRole, assumed_by: iam.IRole) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role", assumed_by=iam.SessionTagsPrincipal(iam.ArnPrincipal(assumed_by.role_arn)),
                             description="Portal: acts on EC2 for one user at a time (session tag Owner)",
                             max_session_duration=cdk.Duration.hours(1))
        owner_requested = {"aws:RequestTag/" + OWNER_TAG: PRINCIPAL_OWNER}
        owner_matches = {"aws:ResourceTag/" + OWNER_TAG: PRINCIPAL_OWNER}
        types = [t["type"] for t in portal["instance_types"]]
        statements = [
            iam.PolicyStatement(sid="LaunchOwnInstanceOfAllowedType", actions=["ec2:RunInstances"],
                                resources=[ec2_arn("instance/*")],
                                conditions={"StringEquals": {**owner_requested, "ec2:InstanceType": types,
                                                             "ec2:MetadataHttpTokens": "required"}}),
            iam.PolicyStatement(sid="LaunchOwnEncryptedVolume", actions=["ec2:RunInstances"], resources=[ec2_arn("volume/*")],
                                conditions={"StringEquals": owner_requested, "Bool": {"ec2:Encrypted": "true"}}),
            iam.PolicyStatement(sid="LaunchOwnNetworkInterface", actions=["ec2:RunInstances"],
                                resources=[ec2_arn("network-interface/*")], conditions={"StringEquals": owner_requested}),
            iam.PolicyStatement(sid="LaunchIntoPortalNetwork", actions=["ec2:RunInstances"],
                                resources=[ec2_arn(f"subnet/{s}") for s in subnet_ids]
                                + [ec2_arn(f"security-group/{security_group.security_group_id}")]),
            iam.PolicyStatement(sid="LaunchWithOwnKeyPair", actions=["ec2:RunInstances"], resources=[ec2_arn("key-pair/*")],
                                conditions={"StringEquals": owner_matches}),
            iam.PolicyStatement(sid="CreateOwnKeyPair", actions=["ec2:CreateKeyPair"], resources=[ec2_arn("key-pair/*")],
                                conditions={"StringEquals": owner_requested}),
            iam.PolicyStatement(sid="TagOnlyWhileCreating", actions=["ec2:CreateTags"],
                                resources=[ec2_arn(f"{kind}/*") for kind in ("instance", "volume", "network-interface", "key-pair")],
                                conditions={"StringEquals": {**owner_requested, "ec2:CreateAction": ["RunInstances", "CreateKeyPair"]}}),
            iam.PolicyStatement(sid="ActOnOwnInstances", actions=["ec2:StartInstances", "ec2:StopInstances", "ec2:TerminateInstances"],
                                resources=[ec2_arn("instance/*")], conditions={"StringEquals": owner_matches}),
            iam.PolicyStatement(sid="DeleteOwnKeyPair", actions=["ec2:DeleteKeyPair"], resources=[ec2_arn("key-pair/*")],
                                conditions={"StringEquals": owner_matches}),
            iam.PolicyStatement(sid="PassVmRole", actions=["iam:PassRole"], resources=[vm_role.role_arn],
                                conditions={"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}),
        ]
        fixed = [i["ami"] for i in portal["images"] if i.get("ami")]
        if fixed:
            statements.append(iam.PolicyStatement(sid="LaunchConfiguredAmis", actions=["ec2:RunInstances"],
                                                  resources=[ec2_arn(f"image/{ami}", account=False) for ami in fixed]))
        owners = sorted({i.get("owner", "amazon") for i in portal["images"] if i.get("ssm_parameter")})
        if owners:
            statements.append(iam.PolicyStatement(sid="LaunchImagesOfConfiguredPublishers", actions=["ec2:RunInstances"],
                                                  resources=[ec2_arn("image/*", account=False)],
                                                  conditions={"StringEquals": {"ec2:Owner": owners}}))
        # One managed policy: the statements together exceed an inline policy's comfortable size.
        policy = iam.ManagedPolicy(self, "Policy", statements=statements, roles=[self.role],
                                   description="Portal EC2 actor: only resources tagged with the session's Owner")
        acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*]",
                    "instance ids are unknown before launch; every statement on instances requires the Owner tag to match the session tag")
        for kind in ("volume", "network-interface", "key-pair"):
            acknowledge(policy, f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:{kind}/*]",
                        f"{kind} ids are unknown before creation; the statement requires the Owner request or resource tag to match the session tag")
        if owners:
            acknowledge(policy, "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:ec2:<AWS::Region>::image/*]",
                        "images come from public SSM parameters that change with every release; the ec2:Owner condition pins the publishers")


class PortalFunctions(Construct):
    """The four Lambdas (API, ledger, reconcile, enforcer), each with its own role and log group."""

    SPECS = {
        "Api": ("hc_portal.api.handle", 256, 29, "JSON API behind the HTTP API"),
        "Ledger": ("hc_portal.events.handle", 256, 60, "EC2 state changes into the spend ledger"),
        "Reconcile": ("hc_portal.reconcile.handle", 256, 300, "nightly Cost Explorer reconciliation"),
        "Enforcer": ("hc_portal.enforcer.handle", 256, 240, "budget enforcement and idle stop"),
    }

    def __init__(self, scope: Construct, construct_id: str, *, environment: dict[str, str]) -> None:
        super().__init__(scope, construct_id)
        code = lambda_.Code.from_asset(str(LAMBDA_ASSET), exclude=["**/__pycache__", "*.pyc"])
        self.functions: dict[str, lambda_.Function] = {}
        for name, (handler, memory, timeout, purpose) in self.SPECS.items():
            role = iam.Role(self, f"{name}Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                            description=f"Portal {purpose}")
            log_group = logs.LogGroup(self, f"{name}Logs", retention=logs.RetentionDays.THREE_MONTHS,
                                      removal_policy=cdk.RemovalPolicy.DESTROY)
            fn = lambda_.Function(
                self, name, runtime=lambda_.Runtime.PYTHON_3_12, architecture=lambda_.Architecture.ARM_64,
                handler=handler, code=code, memory_size=memory, timeout=cdk.Duration.seconds(timeout),
                environment=environment, role=role, log_group=log_group, description=f"HelioCloud portal: {purpose}",
            )
            log_group.grant_write(role)
            acknowledge(fn, "AwsSolutions-L1",
                        "Python 3.12 is the runtime the portal code is tested on; upgrades follow the tested interpreter")
            self.functions[name] = fn

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.functions[name]


class PortalSchedules(Construct):
    """EC2 state changes → ledger (retries, DLQ); nightly reconcile; enforcer every 5 minutes."""

    def __init__(self, scope: Construct, construct_id: str, *, ledger: lambda_.IFunction, reconcile: lambda_.IFunction,
                 enforcer: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(self, "LedgerDeadLetters", enforce_ssl=True,
                                      encryption=sqs.QueueEncryption.SQS_MANAGED, retention_period=cdk.Duration.days(14))
        acknowledge(self.dead_letters, "AwsSolutions-SQS3",
                    "this queue is itself the dead-letter queue of the ledger rule; it needs no further DLQ")
        events.Rule(self, "Ec2StateChanges", description="EC2 state changes into the portal's spend ledger",
                    event_pattern=events.EventPattern(source=["aws.ec2"], detail_type=["EC2 Instance State-change Notification"]),
                    targets=[targets.LambdaFunction(ledger, dead_letter_queue=self.dead_letters, retry_attempts=8,
                                                    max_event_age=cdk.Duration.hours(6))])
        events.Rule(self, "NightlyReconcile", description="One Cost Explorer call a day, grouped by the Owner tag",
                    schedule=events.Schedule.cron(hour="6", minute="15"), targets=[targets.LambdaFunction(reconcile)])
        events.Rule(self, "Enforce", description="Stop VMs over budget or idle",
                    schedule=events.Schedule.rate(cdk.Duration.minutes(5)), targets=[targets.LambdaFunction(enforcer)])


class PortalApi(Construct):
    """The HTTP API: every route behind the Cognito JWT authorizer, access-logged, throttled."""

    def __init__(self, scope: Construct, construct_id: str, *, handler: lambda_.IFunction) -> None:
        super().__init__(scope, construct_id)
        self.http_api = apigw.HttpApi(self, "Http", description="HelioCloud portal JSON API", create_default_stage=True)
        self._handler = handler
        stage = self.http_api.default_stage.node.default_child
        access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.THREE_MONTHS,
                                    removal_policy=cdk.RemovalPolicy.DESTROY)
        stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn,
            format='{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","time":"$context.requestTime",'
                   '"route":"$context.routeKey","status":"$context.status","latency":"$context.responseLatency",'
                   '"sub":"$context.authorizer.claims.sub","error":"$context.authorizer.error"}')
        stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(throttling_burst_limit=100, throttling_rate_limit=50)

    def add_routes(self, *, user_pool: cognito.IUserPool, client: cognito.IUserPoolClient) -> None:
        authorizer = authorizers.HttpUserPoolAuthorizer("Cognito", user_pool, user_pool_clients=[client])
        integration = integrations.HttpLambdaIntegration("Handler", self._handler)
        for route in ROUTES:
            method, path = route.split(" ", 1)
            self.http_api.add_routes(path=path, methods=[apigw.HttpMethod[method]], integration=integration,
                                     authorizer=authorizer)

    @property
    def domain_name(self) -> str:
        return f"{self.http_api.api_id}.execute-api.{cdk.Aws.REGION}.{cdk.Aws.URL_SUFFIX}"
