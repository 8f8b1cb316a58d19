"""Network: the VPC every other part runs in.

A new VPC over 2-3 AZs with 0, 1 or one-per-AZ NAT gateways and a free S3 gateway endpoint, or
an existing VPC imported by id. With 0 NAT gateways, workloads use the public subnets (public
IPs, reachable only through their security groups): the cheapest sound layout for an idle
instance; with NAT they use private subnets.
"""
from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from heliocloud.config import InstanceConfig


class NetworkStack(cdk.Stack):
    def __init__(self, scope: Construct, construct_id: str, *, config: InstanceConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, description=f"HelioCloud {config.name}: network", **kwargs)
        net = config.network
        if net["vpc_id"]:
            self.vpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=net["vpc_id"])
            self.workload_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS)
            return
        nat = net["nat_gateways"]
        private_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PRIVATE_ISOLATED
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(net["cidr"]),
            max_azs=net["max_azs"],
            nat_gateways=nat,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20),
                ec2.SubnetConfiguration(name="private", subnet_type=private_type, cidr_mask=19),
            ],
            # S3 traffic (the data buckets) stays on the AWS network and costs nothing extra.
            gateway_endpoints={"S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3)},
        )
        # Kubernetes Services of type LoadBalancer (the Daskhub proxy) find their subnets by these
        # tags; without them the AWS load balancer controller has to guess.
        for subnet in self.vpc.public_subnets:
            cdk.Tags.of(subnet).add("kubernetes.io/role/elb", "1")
        for subnet in self.vpc.private_subnets + self.vpc.isolated_subnets:
            cdk.Tags.of(subnet).add("kubernetes.io/role/internal-elb", "1")
        # Nodes and VMs go where they can reach the internet: private subnets behind NAT when
        # there is NAT, otherwise public subnets.
        self.workload_subnets = ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS if nat else ec2.SubnetType.PUBLIC
        )
        flow_logs = logs.LogGroup(
            self,
            "FlowLogs",
            retention=RETENTION_DAYS[net["flow_log_retention_days"]],
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )
        self.vpc.add_flow_log("FlowLog", destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs))
        cdk.CfnOutput(self, "VpcId", value=self.vpc.vpc_id, description="VPC of the instance")


# CloudWatch Logs accepts only these retention periods (the schema enforces the same list).
RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS, 150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS, 545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS, 1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}
