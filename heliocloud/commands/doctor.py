"""`heliocloud doctor`: check a deployed Daskhub through the Kubernetes API.

Nodes ready per node group, hub/proxy/gateway pods ready, the hub's load balancer, cluster
autoscaler running, CSI drivers and NVIDIA device plugin present; the two Helm releases deployed
on the pinned charts, the gateway's hub access scopes on both sides, and the researcher images'
dask-gateway equal to the server's; and, for admins, every user's Dask clusters by owner. Uses your kubeconfig: after a
deploy, `aws eks update-kubeconfig --name <instance>-daskhub --role-arn <AdminRole>` (the stack
prints this command). Exit status 1 if any check fails.
"""
from __future__ import annotations

import base64
import gzip
import json
import sys
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from heliocloud import daskhub
from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit

OK, WARN, FAIL = "ok", "warn", "FAIL"
_STYLE = {OK: "green", WARN: "yellow", FAIL: "bold red"}

# (check name, label selector) of the pods that must be ready in the release namespace.
RELEASE_PODS = [
    ("hub", "component=hub"),
    ("proxy", "component=proxy"),
    ("dask-gateway api", "app.kubernetes.io/component=gateway"),
    ("dask-gateway controller", "app.kubernetes.io/component=controller"),
    ("dask-gateway traefik", "app.kubernetes.io/component=traefik"),
]
# (check name, kind, name prefix) of the add-ons in kube-system.
ADDONS = [
    ("cluster autoscaler", "deployment", "cluster-autoscaler"),
    ("EBS CSI driver", "daemonset", "ebs-csi-node"),
    ("EFS CSI driver", "daemonset", "efs-csi-node"),
    ("NVIDIA device plugin", "daemonset", "nvidia-device-plugin"),
]


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str


def register(sub) -> None:
    p = sub.add_parser("doctor", help="check a deployed Daskhub (nodes, hub, gateway, add-ons)")
    add_config_option(p)
    p.add_argument("--kubeconfig", help="kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
    p.add_argument("--context", help="kubeconfig context (default: the current one)")
    p.set_defaults(func=run)


def _ready(pod) -> bool:
    conditions = pod.status.conditions or []
    return pod.status.phase == "Running" and any(c.type == "Ready" and c.status == "True" for c in conditions)


def _node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def node_checks(core_api, settings: dict) -> list[Check]:
    nodes = core_api.list_node().items
    checks = []
    for spec in daskhub.node_groups(settings):
        members = [n for n in nodes if (n.metadata.labels or {}).get(daskhub.NODE_GROUP_LABEL) == spec.name]
        ready = sum(_node_ready(n) for n in members)
        detail = f"{ready}/{len(members)} ready (min {spec.min_size}, max {spec.max_size})"
        if ready < spec.min_size:
            status = FAIL
        elif ready < len(members):
            status = WARN
            detail += "; a node is not ready (starting, or failing)"
        else:
            status = OK
            if not members:
                detail = f"scaled to zero (max {spec.max_size})"
        checks.append(Check(f"nodes: {spec.name}", status, detail))
    return checks


def release_checks(core_api, namespace: str) -> list[Check]:
    checks = []
    for name, selector in RELEASE_PODS:
        pods = core_api.list_namespaced_pod(namespace, label_selector=selector).items
        ready = sum(_ready(p) for p in pods)
        if not pods:
            checks.append(Check(f"pod: {name}", FAIL, f"no pod matches {selector} in {namespace}"))
        else:
            waiting = [p.metadata.name for p in pods if not _ready(p)]
            checks.append(Check(f"pod: {name}", OK if ready else FAIL,
                                f"{ready}/{len(pods)} ready" + (f"; not ready: {', '.join(waiting)}" if waiting else "")))
    service = next((s for s in core_api.list_namespaced_service(namespace).items if s.metadata.name == "hub-public"),
                   None)
    ingress = (service.status.load_balancer.ingress or []) if service and service.status.load_balancer else []
    if service is None:
        checks.append(Check("hub load balancer", FAIL, f"service hub-public missing in {namespace}"))
    elif not ingress:
        checks.append(Check("hub load balancer", FAIL, "hub-public has no load balancer address yet"))
    else:
        checks.append(Check("hub load balancer", OK, ingress[0].hostname or ingress[0].ip))
    return checks


def addon_checks(apps_api) -> list[Check]:
    deployments = apps_api.list_namespaced_deployment("kube-system").items
    daemonsets = apps_api.list_namespaced_daemon_set("kube-system").items
    checks = []
    for name, kind, prefix in ADDONS:
        items = deployments if kind == "deployment" else daemonsets
        found = next((i for i in items if i.metadata.name.startswith(prefix)), None)
        if found is None:
            checks.append(Check(name, FAIL, f"no {kind} named {prefix}* in kube-system"))
        elif kind == "deployment":
            ready = found.status.ready_replicas or 0
            checks.append(Check(name, OK if ready else FAIL, f"{found.metadata.name}: {ready}/{found.spec.replicas} ready"))
        else:
            desired, ready = found.status.desired_number_scheduled or 0, found.status.number_ready or 0
            # A daemonset for GPU nodes has nothing to run while GPU groups are at zero: that is fine.
            status = OK if ready == desired else WARN
            checks.append(Check(name, status, f"{found.metadata.name}: {ready}/{desired} ready"))
    return checks


def helm_release(core_api, namespace: str, name: str) -> dict | None:
    """The deployed revision of a Helm release, as Helm stores it: a Secret labelled
    owner=helm, whose `release` field is base64(gzip(JSON)) (Kubernetes base64-encodes it again)."""
    secrets = core_api.list_namespaced_secret(namespace, label_selector=f"owner=helm,name={name},status=deployed").items
    if not secrets:
        return None
    latest = max(secrets, key=lambda s: int((s.metadata.labels or {}).get("version", 0)))
    payload = base64.b64decode(base64.b64decode(latest.data["release"]))
    return json.loads(gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload)


def _dig(tree: dict, *path: str):
    for key in path:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def chart_checks(core_api, settings: dict) -> list[Check]:
    """Both releases deployed on the pinned charts, and the gateway's hub scopes wired on both
    sides: the gateway checks `access:services!service=dask-gateway`, users' tokens carry it."""
    namespace = settings["charts"]["namespace"]
    wanted = {daskhub.HUB_RELEASE: ("jupyterhub", settings["charts"]["jupyterhub"]["version"]),
              daskhub.GATEWAY_RELEASE: ("dask-gateway", settings["charts"]["dask_gateway"]["version"])}
    checks, releases = [], {}
    for release, (chart, version) in wanted.items():
        found = helm_release(core_api, namespace, release)
        releases[release] = found or {}
        if found is None:
            checks.append(Check(f"release: {release}", FAIL, f"no deployed Helm release {release} in {namespace}"))
            continue
        meta = _dig(found, "chart", "metadata") or {}
        detail = f"{meta.get('name')} {meta.get('version')} (app {meta.get('appVersion')})"
        if (meta.get("name"), meta.get("version")) == (chart, version):
            checks.append(Check(f"release: {release}", OK, detail))
        else:
            checks.append(Check(f"release: {release}", FAIL, f"{detail}; instance.yaml pins {chart} {version} "
                                                              "(a deploy brings it there)"))
    scope = f"access:services!service={daskhub.GATEWAY_SERVICE}"
    hub_config = releases[daskhub.HUB_RELEASE].get("config") or {}
    holders = {"users' role": _dig(hub_config, "hub", "loadRoles", "user", "scopes") or [],
               "server tokens": _dig(hub_config, "hub", "config", "Spawner", "server_token_scopes") or []}
    missing = [who for who, scopes in holders.items() if scope not in scopes]
    service = _dig(releases[daskhub.GATEWAY_RELEASE].get("config") or {},
                   "gateway", "auth", "jupyterhub", "jupyterhubServiceName")
    if service != daskhub.GATEWAY_SERVICE:
        checks.append(Check("gateway hub scopes", FAIL, "the gateway accepts any hub token (jupyterhubServiceName "
                                                        f"is {service!r}, not {daskhub.GATEWAY_SERVICE!r})"))
    elif missing:
        checks.append(Check("gateway hub scopes", FAIL, f"{scope} missing from {', '.join(missing)}: "
                                                        "`Gateway()` in notebooks is refused"))
    else:
        checks.append(Check("gateway hub scopes", OK, f"gateway requires {scope}; users and their servers hold it"))
    checks.append(image_check(settings, releases))
    return checks


def image_check(settings: dict, releases: dict) -> Check:
    """Client == server: the notebooks' dask-gateway (the image spec's pin) against the deployed
    gateway chart's appVersion. Own images (images.build false) cannot be read from here."""
    server = _dig(releases[daskhub.GATEWAY_RELEASE], "chart", "metadata", "appVersion")
    deployed = _dig(releases[daskhub.HUB_RELEASE].get("config") or {}, "singleuser", "image") or {}
    if not server:
        return Check("image versions", FAIL, "no deployed dask-gateway release to compare with")
    if not settings["images"]["build"]:
        return Check("image versions", WARN, f"own image {deployed.get('name')}:{deployed.get('tag')}: check that "
                                             f"it has dask-gateway {server} (python -c 'import dask_gateway; "
                                             "print(dask_gateway.__version__)' in a notebook)")
    client = daskhub.image_spec_pins().get("dask-gateway")
    expected = daskhub.image_ref(settings, "cpu")["tag"]
    if client != server:
        return Check("image versions", FAIL, f"helm/images pins dask-gateway {client}, the gateway runs {server}")
    if deployed.get("tag") != expected:
        return Check("image versions", WARN, f"notebooks run {deployed.get('tag')}, this checkout builds {expected} "
                                             "(deploy to roll them forward)")
    return Check("image versions", OK, f"dask-gateway {client} in the images = {server} on the server "
                                       f"(images {expected})")


def dask_cluster_check(custom_api, namespace: str) -> Check:
    """Every user's Dask clusters, for admins: the gateway shows each user only their own, but
    its Kubernetes backend keeps one DaskCluster object per cluster, with its owner."""
    clusters = custom_api.list_namespaced_custom_object("gateway.dask.org", "v1alpha1", namespace,
                                                        "daskclusters")["items"]
    owners = Counter(c.get("spec", {}).get("username", "?") for c in clusters)
    detail = ", ".join(f"{user} ({n})" for user, n in sorted(owners.items())) or "none running"
    return Check("dask clusters", OK, f"{len(clusters)}: {detail}" if clusters else detail)


def run_checks(api_client, settings: dict) -> list[Check]:
    from kubernetes import client

    core_api, apps_api = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    namespace = settings["charts"]["namespace"]
    return (node_checks(core_api, settings) + release_checks(core_api, namespace)
            + chart_checks(core_api, settings) + [dask_cluster_check(client.CustomObjectsApi(api_client), namespace)]
            + addon_checks(apps_api))


def render(checks: list[Check], title: str) -> Table:
    table = Table(title=title)
    for column in ("check", "status", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.name, f"[{_STYLE[check.status]}]{check.status}[/]", check.detail)
    return table


def run(args) -> int:
    from kubernetes import config as kube_config

    config = load_or_exit(args.config)
    api_client = kube_config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
    console = Console(file=sys.stdout)
    with console.status("asking the cluster"), api_client:
        checks = run_checks(api_client, config.daskhub)
    console.print(render(checks, f"Daskhub of {config.name} ({config.name}-daskhub)"))
    failed = [c for c in checks if c.status == FAIL]
    console.print(f"[bold red]{len(failed)} check(s) failed[/]" if failed else "[bold green]all checks passed[/]")
    return 1 if failed else 0
