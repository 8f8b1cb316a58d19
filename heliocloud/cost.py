"""What an instance costs with nobody using it, read from its synthesized CloudFormation.

Every resource of every template is classified: priced (a line with its quantity, the price
assumption and $/month), billed only by usage (a $0 line that says what usage costs), free, or
unknown (reported, so that a new chargeable resource type cannot slip by unnoticed). Prices come
from ``heliocloud/data/prices.yaml`` (``heliocloud.prices``); nothing here calls AWS. The cost of
a busy user-hour is in ``heliocloud.user_hours``.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from heliocloud.cloudformation import Resource, TemplateIndex
from heliocloud.prices import Prices

# ---------------------------------------------------------------------------------------- lines
@dataclass(frozen=True)
class Item:
    category: str
    resource: str
    what: str
    quantity: float
    assumption: str
    monthly: float


@dataclass
class Estimate:
    region: str
    as_of: str
    on: dt.date
    items: list[Item] = field(default_factory=list)
    free: Counter = field(default_factory=Counter)  # resource type -> count (no idle charge)
    unknown: Counter = field(default_factory=Counter)  # resource type -> count (not classified)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> float:
        return round(sum(item.monthly for item in self.items), 2)

    def by_category(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for item in self.items:
            out[item.category] = round(out.get(item.category, 0.0) + item.monthly, 2)
        return out

    def to_dict(self) -> dict:
        return {
            "region": self.region, "prices_as_of": self.as_of, "on": self.on.isoformat(),
            "total_monthly_usd": self.total, "by_category": self.by_category(),
            "items": [{**item.__dict__, "monthly": round(item.monthly, 4)} for item in self.items],
            "free": dict(self.free), "unknown": dict(self.unknown), "warnings": self.warnings,
        }


class _Context:
    """What a pricer may use: the prices, the index, the date, and a place for warnings."""

    def __init__(self, index: TemplateIndex, prices: Prices, on: dt.date, warnings: list[str]):
        self.index, self.prices, self.on, self.warnings = index, prices, on, warnings


Pricer = Callable[[Resource, _Context], Iterable[Item]]
PRICERS: dict[str, Pricer] = {}


def priced(*types: str) -> Callable[[Pricer], Pricer]:
    """Register a function that prices the given resource types."""
    def register(fn: Pricer) -> Pricer:
        for t in types:
            PRICERS[t] = fn
        return fn
    return register


# Resource types that cost nothing while nobody uses the instance (pay per request, or free).
FREE_PREFIXES = (
    "AWS::IAM::", "AWS::Lambda::", "AWS::SQS::", "AWS::SNS::", "AWS::Events::", "AWS::Scheduler::",
    "AWS::StepFunctions::", "AWS::ApiGateway::", "AWS::ApiGatewayV2::", "AWS::CDK::", "Custom::",
    "AWS::CloudFormation::", "AWS::Cognito::", "AWS::CloudFront::", "AWS::S3::", "AWS::Logs::",
    "AWS::DynamoDB::", "AWS::EFS::", "AWS::KMS::", "AWS::SecretsManager::", "AWS::SSM::",
    "AWS::CertificateManager::", "AWS::Budgets::", "AWS::Route53::", "AWS::ECR::", "AWS::CodeBuild::",
)
FREE_TYPES = {
    "AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::RouteTable", "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::InternetGateway", "AWS::EC2::VPCGatewayAttachment",
    "AWS::EC2::EgressOnlyInternetGateway", "AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress",
    "AWS::EC2::SecurityGroupEgress", "AWS::EC2::LaunchTemplate", "AWS::EC2::KeyPair", "AWS::EC2::NetworkAcl",
    "AWS::EC2::NetworkAclEntry", "AWS::EC2::SubnetNetworkAclAssociation", "AWS::EC2::VPCCidrBlock",
    "AWS::EC2::PrefixList", "AWS::EC2::PlacementGroup", "AWS::EC2::DHCPOptions",
    "AWS::EC2::VPCDHCPOptionsAssociation", "AWS::EC2::NetworkInterface", "AWS::EC2::EIPAssociation",
    "AWS::EKS::AccessEntry", "AWS::EKS::Addon", "AWS::EKS::PodIdentityAssociation",
    "AWS::EKS::FargateProfile", "AWS::EKS::IdentityProviderConfig",
    "AWS::AutoScaling::LaunchConfiguration", "AWS::AutoScaling::LifecycleHook",
    "AWS::AutoScaling::ScalingPolicy", "AWS::AutoScaling::ScheduledAction",
    "AWS::ElasticLoadBalancingV2::Listener", "AWS::ElasticLoadBalancingV2::ListenerRule",
    "AWS::ElasticLoadBalancingV2::TargetGroup", "AWS::ElasticLoadBalancingV2::ListenerCertificate",
}


def _is_free(resource_type: str) -> bool:
    return resource_type in FREE_TYPES or resource_type.startswith(FREE_PREFIXES)


def estimate_idle(templates: dict[str, dict], prices: Prices, *, on: dt.date | None = None) -> Estimate:
    """Price every always-on resource of ``templates`` ({stack: template}) for one month."""
    on = on or dt.date.today()
    estimate = Estimate(region=prices.region, as_of=prices.as_of, on=on)
    index = TemplateIndex(templates)
    ctx = _Context(index, prices, on, estimate.warnings)
    for resource in index.resources():
        pricer = PRICERS.get(resource.type) or (_helm_chart if _is_helm_chart(resource.type) else None)
        lines = list(pricer(resource, ctx)) if pricer is not None else []
        if lines:
            estimate.items.extend(lines)
        elif pricer is not None or _is_free(resource.type):
            estimate.free[resource.type] += 1
        else:
            estimate.unknown[resource.type] += 1
    for resource_type, count in sorted(estimate.unknown.items()):
        estimate.warnings.append(
            f"{count} × {resource_type}: not classified; assumed free when idle (add it to heliocloud/cost.py)"
        )
    return estimate


def _int(value: Any, default: int) -> int:
    """CloudFormation numbers may be strings ("2"); tokens fall back to ``default``."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _count(value: Any, default: int) -> int:
    return len(value) if isinstance(value, list) else default


# ------------------------------------------------------------------------------ control planes
@priced("AWS::EKS::Cluster", "Custom::AWSCDK-EKS-Cluster")
def _eks_cluster(r: Resource, ctx: _Context) -> Iterable[Item]:
    eks = ctx.prices["eks"]
    config = r.props.get("Config") or {}  # the aws_eks (v1) custom resource keeps the spec here
    version = str(r.props.get("Version") or config.get("version") or "")
    support = (r.props.get("UpgradePolicy") or config.get("upgradePolicy") or {})
    support_type = support.get("SupportType") or support.get("supportType") or "EXTENDED"
    end = eks["standard_support_end"].get(version)
    if version and end is None:
        ctx.warnings.append(f"{r.name}: support window of Kubernetes {version} unknown; priced as standard support")
    extended = end is not None and ctx.on > dt.date.fromisoformat(end) and support_type != "STANDARD"
    hourly = eks["cluster_hour_extended"] if extended else eks["cluster_hour_standard"]
    label = f"Kubernetes {version or '(EKS default)'}"
    if extended:
        assumption = f"${hourly}/h: {label} left standard support on {end} (extended support); upgrade to pay ${eks['cluster_hour_standard']}/h"
    elif end:
        assumption = f"${hourly}/h, {label} in standard support until {end}"
    else:
        assumption = f"${hourly}/h, {label}"
    if (r.props.get("ComputeConfig") or {}).get("Enabled"):
        ctx.warnings.append(f"{r.name}: EKS Auto Mode adds a management fee per instance-hour (not priced here)")
    yield Item("control plane", r.name, "EKS cluster", 1, assumption, ctx.prices.month(hourly))


# ---------------------------------------------------------------------------------------- nodes
@dataclass(frozen=True)
class NodePool:
    """A group of nodes as the templates describe it."""

    name: str
    instance_type: str
    spot: bool
    min_size: int
    max_size: int
    disk_gib: int
    disk_type: str
    public_ip: bool | None


def _launch_template(r: Resource, ctx: _Context, spec: dict | None) -> dict:
    if not spec:
        return {}
    target = ctx.index.resolve(r.stack, spec.get("LaunchTemplateId") or spec.get("Id") or {})
    if target is None:
        name = spec.get("LaunchTemplateName") or spec.get("Name")
        target = ctx.index.resolve(r.stack, name) if isinstance(name, dict) else None
    if target is None or target.type != "AWS::EC2::LaunchTemplate":
        return {}
    return target.props.get("LaunchTemplateData") or {}


def _root_volume(block_devices: Any, default_gib: int, default_type: str) -> tuple[int, str]:
    for mapping in block_devices or []:
        ebs = mapping.get("Ebs") or {}
        if ebs:
            return _int(ebs.get("VolumeSize"), default_gib), ebs.get("VolumeType") or default_type
    return default_gib, default_type


def _public(ctx: _Context, r: Resource, subnets: Any, interfaces: Any = None) -> bool | None:
    for nic in interfaces or []:
        if "AssociatePublicIpAddress" in nic:
            return bool(nic["AssociatePublicIpAddress"])
    if not isinstance(subnets, list) or not subnets:
        return None
    answers = [ctx.index.is_public_subnet(r.stack, s) for s in subnets]
    if any(a is True for a in answers):
        return True
    return False if all(a is False for a in answers) else None


def node_pool(r: Resource, ctx: _Context) -> NodePool | None:
    """A node group or Auto Scaling group as a NodePool (None for other types)."""
    eks = ctx.prices["eks"]
    if r.type == "AWS::EKS::Nodegroup":
        lt = _launch_template(r, ctx, r.props.get("LaunchTemplate"))
        scaling = r.props.get("ScalingConfig") or {}
        types = r.props.get("InstanceTypes") or ([lt["InstanceType"]] if lt.get("InstanceType") else [eks["default_instance_type"]])
        if lt.get("BlockDeviceMappings"):
            disk = _root_volume(lt["BlockDeviceMappings"], eks["default_node_disk_gib"], "gp3")
        else:
            disk = (_int(r.props.get("DiskSize"), eks["default_node_disk_gib"]), eks["default_node_disk_type"])
        return NodePool(
            name=r.name, instance_type=types[0], spot=r.props.get("CapacityType") == "SPOT",
            min_size=_int(scaling.get("MinSize"), 1), max_size=_int(scaling.get("MaxSize"), 1),
            disk_gib=disk[0], disk_type=disk[1],
            public_ip=_public(ctx, r, r.props.get("Subnets"), lt.get("NetworkInterfaces")),
        )
    if r.type == "AWS::AutoScaling::AutoScalingGroup":
        mixed = r.props.get("MixedInstancesPolicy") or {}
        lt_spec = r.props.get("LaunchTemplate") or (mixed.get("LaunchTemplate") or {}).get("LaunchTemplateSpecification")
        lt = _launch_template(r, ctx, lt_spec)
        overrides = (mixed.get("LaunchTemplate") or {}).get("Overrides") or []
        config = ctx.index.resolve(r.stack, r.props.get("LaunchConfigurationName") or {})
        lc = config.props if config is not None and config.type == "AWS::AutoScaling::LaunchConfiguration" else {}
        instance_type = (overrides[0].get("InstanceType") if overrides else None) or lt.get("InstanceType") or lc.get("InstanceType")
        distribution = mixed.get("InstancesDistribution") or {}
        spot = bool(mixed) and _int(distribution.get("OnDemandBaseCapacity"), 0) == 0 and \
            _int(distribution.get("OnDemandPercentageAboveBaseCapacity"), 100) == 0
        disk = _root_volume(lt.get("BlockDeviceMappings") or lc.get("BlockDeviceMappings"),
                            eks["default_node_disk_gib"], eks["default_node_disk_type"])
        interfaces = lt.get("NetworkInterfaces") or ([{"AssociatePublicIpAddress": lc["AssociatePublicIpAddress"]}]
                                                     if "AssociatePublicIpAddress" in lc else None)
        return NodePool(
            name=r.name, instance_type=instance_type or "", spot=spot,
            min_size=_int(r.props.get("MinSize"), 0), max_size=_int(r.props.get("MaxSize"), 0),
            disk_gib=disk[0], disk_type=disk[1],
            public_ip=_public(ctx, r, r.props.get("VPCZoneIdentifier"), interfaces),
        )
    return None


def _node_items(pool: NodePool, count: int, what: str, ctx: _Context) -> Iterable[Item]:
    p = ctx.prices
    hourly = p.instance_hour(pool.instance_type, spot=pool.spot) if pool.instance_type else None
    capacity = "spot" if pool.spot else "on-demand"
    if hourly is None:
        ctx.warnings.append(f"{pool.name}: no price for instance type {pool.instance_type or '(unknown)'!r}; "
                            "add it to heliocloud/data/prices.yaml")
        yield Item("compute", pool.name, what, count, f"{pool.instance_type or '?'}: price unknown", 0.0)
        return
    note = f" (× {p['ec2']['spot_fraction']} of on-demand, assumed)" if pool.spot else ""
    if count == 0:
        yield Item("compute", pool.name, what, 0,
                   f"scales to zero (max {pool.max_size}); one {pool.instance_type} {capacity} node = ${hourly:.4f}/h{note}", 0.0)
        return
    yield Item("compute", pool.name, what, count, f"{count} × {pool.instance_type} {capacity} at ${hourly:.4f}/h{note}",
               count * p.month(hourly))
    gb_month = p.ebs_gb_month(pool.disk_type)
    yield Item("storage", pool.name, f"{what}: root volumes", count,
               f"{count} × {pool.disk_gib} GiB {pool.disk_type} at ${gb_month}/GB-month", count * pool.disk_gib * gb_month)
    if pool.public_ip:
        yield Item("network", pool.name, f"{what}: public IPv4", count,
                   f"{count} node address(es) at ${p['network']['public_ipv4_hour']}/h (public subnets)", count * p.ipv4_month)


@priced("AWS::EKS::Nodegroup", "AWS::AutoScaling::AutoScalingGroup")
def _nodes(r: Resource, ctx: _Context) -> Iterable[Item]:
    pool = node_pool(r, ctx)
    kind = "node group" if r.type == "AWS::EKS::Nodegroup" else "auto scaling group"
    name = r.props.get("NodegroupName") or r.props.get("AutoScalingGroupName")
    what = f"{kind} {name}" if isinstance(name, str) else kind
    yield from _node_items(pool, pool.min_size, f"{what} at min size", ctx)


@priced("AWS::EC2::Instance")
def _instance(r: Resource, ctx: _Context) -> Iterable[Item]:
    ec2 = ctx.prices["ec2"]
    disk = _root_volume(r.props.get("BlockDeviceMappings"), ec2["default_root_gib"], ec2["default_root_type"])
    subnets = [r.props["SubnetId"]] if "SubnetId" in r.props else None
    pool = NodePool(name=r.name, instance_type=r.props.get("InstanceType") or "", spot=False, min_size=1, max_size=1,
                    disk_gib=disk[0], disk_type=disk[1],
                    public_ip=_public(ctx, r, subnets, r.props.get("NetworkInterfaces")))
    yield from _node_items(pool, 1, "EC2 instance", ctx)


# -------------------------------------------------------------------------------------- network
@priced("AWS::EC2::NatGateway")
def _nat(r: Resource, ctx: _Context) -> Iterable[Item]:
    net = ctx.prices["network"]
    yield Item("network", r.name, "NAT gateway", 1,
               f"${net['nat_gateway_hour']}/h (+ ${net['nat_gateway_gb']}/GB processed: usage)",
               ctx.prices.month(net["nat_gateway_hour"]))


@priced("AWS::EC2::EIP")
def _eip(r: Resource, ctx: _Context) -> Iterable[Item]:
    yield Item("network", r.name, "Elastic IP (public IPv4)", 1,
               f"${ctx.prices['network']['public_ipv4_hour']}/h per public IPv4 address", ctx.prices.ipv4_month)


def _lb_items(r: Resource, ctx: _Context, *, kind: str, azs: int, internet_facing: bool,
              source: str = "", note: str = "") -> Iterable[Item]:
    net = ctx.prices["network"]
    hourly = net[{"application": "alb_hour", "network": "nlb_hour", "gateway": "gwlb_hour", "classic": "classic_lb_hour"}[kind]]
    label = {"application": "ALB", "network": "NLB", "gateway": "Gateway LB", "classic": "Classic LB"}[kind]
    lcu = "" if kind == "classic" else f" (+ ${net['lcu_hour']}/LCU-hour: ≈0 idle)"
    yield Item("network", r.name, f"load balancer ({label}){source}", 1, f"{note}${hourly}/h{lcu}", ctx.prices.month(hourly))
    if internet_facing:
        yield Item("network", r.name, f"load balancer ({label}){source}: public IPv4", azs,
                   f"{azs} address(es), one per AZ, at ${net['public_ipv4_hour']}/h", azs * ctx.prices.ipv4_month)


@priced("AWS::ElasticLoadBalancingV2::LoadBalancer")
def _elbv2(r: Resource, ctx: _Context) -> Iterable[Item]:
    azs = _count(r.props.get("Subnets") or r.props.get("SubnetMappings"), ctx.prices["network"]["default_azs"])
    kind = r.props.get("Type", "application")
    yield from _lb_items(r, ctx, kind=kind, azs=azs,
                         internet_facing=kind != "gateway" and r.props.get("Scheme", "internet-facing") == "internet-facing")


@priced("AWS::ElasticLoadBalancing::LoadBalancer")
def _classic_lb(r: Resource, ctx: _Context) -> Iterable[Item]:
    azs = _count(r.props.get("Subnets") or r.props.get("AvailabilityZones"), ctx.prices["network"]["default_azs"])
    yield from _lb_items(r, ctx, kind="classic", azs=azs, internet_facing=r.props.get("Scheme", "internet-facing") != "internal")


@priced("AWS::EC2::VPCEndpoint")
def _endpoint(r: Resource, ctx: _Context) -> Iterable[Item]:
    net = ctx.prices["network"]
    kind = r.props.get("VpcEndpointType", "Gateway")
    service = r.props.get("ServiceName")
    service = service if isinstance(service, str) else "(service)"
    if kind == "Gateway":
        yield Item("network", r.name, "VPC gateway endpoint", 1, "gateway endpoints (S3, DynamoDB) are free", 0.0)
        return
    azs = _count(r.props.get("SubnetIds"), net["default_azs"])
    yield Item("network", r.name, f"VPC {kind.lower()} endpoint", azs,
               f"{azs} AZ(s) × ${net['interface_endpoint_hour_per_az']}/h (+ ${net['interface_endpoint_gb']}/GB: usage)",
               azs * ctx.prices.month(net["interface_endpoint_hour_per_az"]))


# Services a chart creates that CloudFormation never sees: (chart, values path of a Service,
# the chart's default Service type). daskhub routes Dask Gateway through JupyterHub's proxy, so
# only the proxy's `proxy-public` Service gets a load balancer by default.
CHART_SERVICES = {
    "daskhub": [("jupyterhub.proxy.service", "LoadBalancer"), ("dask-gateway.traefik.service", "ClusterIP")],
    "jupyterhub": [("proxy.service", "LoadBalancer")],
    "dask-gateway": [("traefik.service", "LoadBalancer")],
}


def _is_helm_chart(resource_type: str) -> bool:
    return resource_type.startswith("Custom::") and "helm" in resource_type.lower().replace("-", "")


def _json_with_tokens(value: Any) -> Any:
    """A JSON document as CDK writes it into a template: a string, or an Fn::Join around tokens
    (each token read as the string "TOKEN"). None when it does not parse."""
    if isinstance(value, dict) and "Fn::Join" in value:
        sep, parts = value["Fn::Join"]
        value = sep.join(p if isinstance(p, str) else "TOKEN" for p in parts)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return None


def _chart_values(values: Any) -> dict | None:
    """Helm values as CDK writes them; {} when absent, None when unreadable."""
    if values is None:
        return {}
    parsed = _json_with_tokens(values)
    return parsed if isinstance(parsed, dict) else None


def _services(values: Any, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every ``...service`` mapping in a values tree, with its dotted path."""
    if isinstance(values, dict):
        for key, sub in values.items():
            here = f"{path}.{key}" if path else key
            if key == "service" and isinstance(sub, dict):
                yield here, sub
            yield from _services(sub, here)


def chart_load_balancers(chart: str, values: dict) -> list[tuple[str, dict]]:
    """(values path, Service spec) of every Service of type LoadBalancer the chart will create."""
    found = {path: spec for path, spec in _services(values)}
    for path, default in CHART_SERVICES.get(chart, []):
        spec = found.get(path) or {}
        found[path] = {**spec, "type": spec.get("type", default)}
    return [(path, spec) for path, spec in sorted(found.items()) if spec.get("type") == "LoadBalancer"]


def _helm_chart(r: Resource, ctx: _Context) -> Iterable[Item]:
    chart = r.props.get("Chart") if isinstance(r.props.get("Chart"), str) else ""
    values = _chart_values(r.props.get("Values"))
    if values is None:
        ctx.warnings.append(f"{r.name}: Helm values of chart {chart!r} not readable; assumed the chart's defaults")
        values = {}
    for path, spec in chart_load_balancers(chart, values):
        yield from _service_load_balancer(r, ctx, spec, source=f" of Helm chart {chart}",
                                          what=f"{path} is a Kubernetes Service of type LoadBalancer (created by the chart")


@priced("Custom::AWSCDK-EKS-KubernetesResource")
def _kubernetes_manifest(r: Resource, ctx: _Context) -> Iterable[Item]:
    """Services of type LoadBalancer in a manifest applied at deploy time (e.g. the hub's)."""
    manifest = _json_with_tokens(r.props.get("Manifest"))
    if not isinstance(manifest, (list, dict)):
        ctx.warnings.append(f"{r.name}: Kubernetes manifest not readable; no load balancer assumed")
        return
    for obj in manifest if isinstance(manifest, list) else [manifest]:
        spec = obj.get("spec") or {}
        if obj.get("kind") == "Service" and spec.get("type") == "LoadBalancer":
            name = (obj.get("metadata") or {}).get("name", "?")
            service = {**spec, "annotations": (obj.get("metadata") or {}).get("annotations") or {}}
            yield from _service_load_balancer(r, ctx, service, source=f" of Service {name}",
                                              what=f"Service {name} is of type LoadBalancer (created by Kubernetes")


def _service_load_balancer(r: Resource, ctx: _Context, spec: dict, *, source: str, what: str) -> Iterable[Item]:
    """The load balancer Kubernetes creates for a Service of type LoadBalancer, from its annotations."""
    annotations = spec.get("annotations") or {}
    listed = annotations.get("service.beta.kubernetes.io/aws-load-balancer-subnets")
    azs = (len(str(listed).split(",")) if listed else
           ctx.index.public_subnet_count() or ctx.prices["network"]["default_azs"])
    lb_type = str(annotations.get("service.beta.kubernetes.io/aws-load-balancer-type", "")).lower()
    kind = "network" if lb_type in ("nlb", "external", "nlb-ip") else "classic"
    internal = str(annotations.get("service.beta.kubernetes.io/aws-load-balancer-internal", "")).lower() == "true" or \
        annotations.get("service.beta.kubernetes.io/aws-load-balancer-scheme") == "internal"
    yield from _lb_items(
        r, ctx, kind=kind, azs=azs, internet_facing=not internal, source=source,
        note=(f"{what}, not in the template; in the {azs} subnet(s) its annotation names): " if listed else
              f"{what}, not in the template; assumed to span the {azs} public-subnet AZs): "),
    )


# -------------------------------------------------------------------------------- data and keys
@priced("AWS::EC2::Volume")
def _volume(r: Resource, ctx: _Context) -> Iterable[Item]:
    size, kind = _int(r.props.get("Size"), 0), r.props.get("VolumeType", "gp2")
    rate = ctx.prices.ebs_gb_month(kind)
    yield Item("storage", r.name, "EBS volume", size, f"{size} GiB {kind} at ${rate}/GB-month", size * rate)


@priced("AWS::EFS::FileSystem")
def _efs(r: Resource, ctx: _Context) -> Iterable[Item]:
    efs = ctx.prices["efs"]
    yield Item("storage", r.name, "EFS file system", 1,
               f"no minimum: ${efs['standard_gb_month']}/GB-month Standard as homes fill (usage)", 0.0)
    if r.props.get("ThroughputMode") == "provisioned":
        mibps = float(r.props.get("ProvisionedThroughputInMibps") or 0)
        yield Item("storage", r.name, "EFS provisioned throughput", mibps,
                   f"{mibps:g} MiB/s at ${efs['provisioned_mibps_month']}/MiB/s-month", mibps * efs["provisioned_mibps_month"])


@priced("AWS::S3::Bucket")
def _bucket(r: Resource, ctx: _Context) -> Iterable[Item]:
    yield Item("storage", r.name, "S3 bucket", 1,
               f"no idle charge: ${ctx.prices['s3']['standard_gb_month']}/GB-month Standard + requests (usage)", 0.0)


@priced("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
def _table(r: Resource, ctx: _Context) -> Iterable[Item]:
    ddb = ctx.prices["dynamodb"]
    if r.type == "AWS::DynamoDB::GlobalTable" and r.props.get("BillingMode") != "PAY_PER_REQUEST":
        ctx.warnings.append(f"{r.name}: provisioned global table (capacity per replica) is not priced")
        return
    if r.props.get("BillingMode", "PROVISIONED") == "PAY_PER_REQUEST":
        yield Item("storage", r.name, "DynamoDB table (on-demand)", 1,
                   f"no idle charge: ${ddb['on_demand_write_million']}/M writes, ${ddb['on_demand_read_million']}/M reads, "
                   f"${ddb['storage_gb_month']}/GB-month (usage)", 0.0)
        return
    throughput = r.props.get("ProvisionedThroughput") or {}
    rcu, wcu = _int(throughput.get("ReadCapacityUnits"), 5), _int(throughput.get("WriteCapacityUnits"), 5)
    hourly = rcu * ddb["provisioned_rcu_hour"] + wcu * ddb["provisioned_wcu_hour"]
    yield Item("storage", r.name, "DynamoDB table (provisioned)", 1,
               f"{rcu} RCU × ${ddb['provisioned_rcu_hour']}/h + {wcu} WCU × ${ddb['provisioned_wcu_hour']}/h",
               ctx.prices.month(hourly))


@priced("AWS::KMS::Key")
def _kms(r: Resource, ctx: _Context) -> Iterable[Item]:
    rotation = " (each of the first two yearly rotations adds $1)" if r.props.get("EnableKeyRotation") else ""
    yield Item("security", r.name, "KMS key", 1, f"${ctx.prices['kms_key_month']}/key-month{rotation}", ctx.prices["kms_key_month"])


@priced("AWS::SecretsManager::Secret")
def _secret(r: Resource, ctx: _Context) -> Iterable[Item]:
    yield Item("security", r.name, "Secrets Manager secret", 1, f"${ctx.prices['secrets_manager_secret_month']}/secret-month",
               ctx.prices["secrets_manager_secret_month"])


@priced("AWS::ECR::Repository")
def _image_repository(r: Resource, ctx: _Context) -> Iterable[Item]:
    ecr = ctx.prices["ecr"]
    size = ecr["researcher_images_gb"]
    yield Item("storage", r.name, "ECR repository: stored images", size,
               f"≈{size} GB of researcher images (CPU + GPU, compressed; estimate) at ${ecr['gb_month']}/GB-month",
               size * ecr["gb_month"])


@priced("AWS::SSM::Parameter")
def _parameter(r: Resource, ctx: _Context) -> Iterable[Item]:
    if r.props.get("Tier") == "Advanced":
        yield Item("security", r.name, "SSM advanced parameter", 1, f"${ctx.prices['ssm_advanced_parameter_month']}/month",
                   ctx.prices["ssm_advanced_parameter_month"])


@priced("AWS::Cognito::UserPool")
def _user_pool(r: Resource, ctx: _Context) -> Iterable[Item]:
    free = ctx.prices["cognito"]["free_mau"]
    tier = r.props.get("UserPoolTier", "ESSENTIALS")
    yield Item("security", r.name, "Cognito user pool", 1,
               f"{tier.title()} tier: first {free:,} monthly active users free; idle = 0 MAU", 0.0)


# ----------------------------------------------------------------------------------- monitoring
@priced("AWS::CloudWatch::Alarm")
def _alarm(r: Resource, ctx: _Context) -> Iterable[Item]:
    cw = ctx.prices["cloudwatch"]
    high_res = _int(r.props.get("Period"), 60) < 60
    rate = cw["high_resolution_alarm_month"] if high_res else cw["alarm_month"]
    yield Item("monitoring", r.name, "CloudWatch alarm", 1, f"${rate}/alarm-month ({'high' if high_res else 'standard'} resolution)", rate)


@priced("AWS::CloudWatch::CompositeAlarm")
def _composite_alarm(r: Resource, ctx: _Context) -> Iterable[Item]:
    rate = ctx.prices["cloudwatch"]["composite_alarm_month"]
    yield Item("monitoring", r.name, "CloudWatch composite alarm", 1, f"${rate}/alarm-month", rate)


@priced("AWS::CloudWatch::Dashboard")
def _dashboard(r: Resource, ctx: _Context) -> Iterable[Item]:
    rate = ctx.prices["cloudwatch"]["dashboard_month"]
    yield Item("monitoring", r.name, "CloudWatch dashboard", 1, f"${rate}/dashboard-month (first 3 per account free)", rate)


@priced("AWS::Logs::LogGroup")
def _log_group(r: Resource, ctx: _Context) -> Iterable[Item]:
    cw = ctx.prices["cloudwatch"]
    retention = r.props.get("RetentionInDays")
    kept = f"kept {retention} days" if retention else "kept forever"
    yield Item("monitoring", r.name, "CloudWatch log group", 1,
               f"${cw['logs_ingest_gb']}/GB ingested + ${cw['logs_stored_gb_month']}/GB-month stored, {kept} (usage)", 0.0)


@priced("AWS::EC2::FlowLog")
def _flow_log(r: Resource, ctx: _Context) -> Iterable[Item]:
    cw = ctx.prices["cloudwatch"]
    gb = cw["idle_flow_log_gb_month"]
    yield Item("monitoring", r.name, "VPC flow log", gb,
               f"≈{gb} GB/month of idle traffic records (estimate) at ${cw['logs_ingest_gb']}/GB ingested",
               gb * cw["logs_ingest_gb"])


@priced("AWS::CloudFront::Distribution")
def _distribution(r: Resource, ctx: _Context) -> Iterable[Item]:
    yield Item("network", r.name, "CloudFront distribution", 1, "no idle charge: per request and GB served (usage)", 0.0)


@priced("AWS::Route53::HostedZone")
def _zone(r: Resource, ctx: _Context) -> Iterable[Item]:
    rate = ctx.prices["route53_hosted_zone_month"]
    yield Item("network", r.name, "Route 53 hosted zone", 1, f"${rate}/zone-month", rate)


@priced("AWS::WAFv2::WebACL")
def _web_acl(r: Resource, ctx: _Context) -> Iterable[Item]:
    waf = ctx.prices["waf"]
    rules = _count(r.props.get("Rules"), 0)
    yield Item("security", r.name, "WAF web ACL", 1, f"${waf['web_acl_month']}/ACL-month + {rules} rule(s) × ${waf['rule_month']}",
               waf["web_acl_month"] + rules * waf["rule_month"])


def scalable_node_pools(templates: dict[str, dict], prices: Prices) -> list[NodePool]:
    """Node groups / Auto Scaling groups that grow with use (max above min)."""
    index = TemplateIndex(templates)
    ctx = _Context(index, prices, dt.date.today(), [])
    pools = [node_pool(r, ctx) for r in index.resources() if r.type in ("AWS::EKS::Nodegroup", "AWS::AutoScaling::AutoScalingGroup")]
    return [p for p in pools if p is not None and p.max_size > p.min_size]
