"""The Daskhub's config-derived facts, as pure functions shared by the CDK stack, the sandbox's
local gateway and `heliocloud doctor`.

Placement follows the JupyterHub and Dask Gateway conventions: ``hub.jupyter.org/node-purpose``
(core|user) with the ``hub.jupyter.org/dedicated=user`` taint on notebook nodes,
``k8s.dask.org/node-purpose`` (scheduler|worker) with the ``k8s.dask.org/dedicated=worker`` taint
on worker nodes, and ``nvidia.com/gpu=present`` tainting every GPU node so only pods that ask for
a GPU land there. ``heliocloud/node-group`` names the group a node belongs to.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from heliocloud.config import semantic_check

REPO = Path(__file__).resolve().parents[1]
GATEWAY_CONFIG = REPO / "helm" / "daskhub" / "gateway_config.py"
BASE_VALUES = REPO / "helm" / "daskhub" / "values.yaml"

# The gateway_config.py reads its instance-specific settings from this environment variable of
# the gateway pod (the chart's `gateway.env`), so the file itself is the same everywhere.
GATEWAY_SETTINGS_ENV = "HELIOCLOUD_GATEWAY_SETTINGS"
NODE_GROUP_LABEL = "heliocloud/node-group"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
USER_TAINT = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
WORKER_TAINT = {"key": "k8s.dask.org/dedicated", "value": "worker", "effect": "NoSchedule"}
# Notebooks and Dask pods run as this service account: IRSA gives it the data-bucket role.
DATA_SERVICE_ACCOUNT = "heliocloud-user"
RELEASE = "daskhub"


@dataclass(frozen=True)
class NodeGroupSpec:
    """One managed node group: what the config says plus the placement rules it implies."""

    name: str
    instance_types: list[str]
    min_size: int
    max_size: int
    spot: bool
    disk_size_gib: int
    gpus_per_node: int
    labels: dict[str, str]
    taints: list[dict[str, str]]

    @property
    def gpu(self) -> bool:
        return self.gpus_per_node > 0

    def autoscaler_tags(self) -> dict[str, str]:
        """ASG tags that let the cluster autoscaler build a node template for an empty group, so
        it can scale the group up from zero (labels, taints and GPUs of a node it has not seen)."""
        prefix = "k8s.io/cluster-autoscaler/node-template"
        tags = {f"{prefix}/label/{k}": v for k, v in self.labels.items()}
        tags.update({f"{prefix}/taint/{t['key']}": f"{t['value']}:{t['effect']}" for t in self.taints})
        if self.gpu:
            tags[f"{prefix}/resources/nvidia.com/gpu"] = str(self.gpus_per_node)
        return tags


_PURPOSE = {
    "core": ({"hub.jupyter.org/node-purpose": "core", "k8s.dask.org/node-purpose": "scheduler"}, []),
    "user": ({"hub.jupyter.org/node-purpose": "user"}, [USER_TAINT]),
    "user-gpu": ({"hub.jupyter.org/node-purpose": "user"}, [USER_TAINT, GPU_TAINT]),
    "dask-worker": ({"k8s.dask.org/node-purpose": "worker"}, [WORKER_TAINT]),
    "dask-worker-gpu": ({"k8s.dask.org/node-purpose": "worker"}, [WORKER_TAINT, GPU_TAINT]),
}
NODE_GROUPS = tuple(_PURPOSE)


def node_groups(daskhub: dict) -> list[NodeGroupSpec]:
    specs = []
    for name, (labels, taints) in _PURPOSE.items():
        group = daskhub["node_groups"][name]
        gpus = group.get("gpus_per_node", 0) if GPU_TAINT in taints else 0
        all_labels = {**labels, NODE_GROUP_LABEL: name}
        if gpus:
            all_labels["heliocloud/gpu"] = "true"
        specs.append(NodeGroupSpec(
            name=name, instance_types=list(group["instance_types"]), min_size=group["min_size"],
            max_size=group["max_size"], spot=group["capacity_type"] == "spot",
            disk_size_gib=group["disk_size_gib"], gpus_per_node=gpus, labels=all_labels, taints=list(taints),
        ))
    return specs


def tolerations(taints: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    return [{"key": t["key"], "operator": "Equal", "value": t["value"], "effect": t["effect"]} for t in taints]


def image(daskhub: dict) -> str:
    return f"{daskhub['image']['name']}:{daskhub['image']['tag']}"


def gateway_settings(daskhub: dict) -> dict[str, Any]:
    """What gateway_config.py needs from instance.yaml (serialised into GATEWAY_SETTINGS_ENV)."""
    dask = daskhub["dask"]
    return {
        "worker_cores_max": dask["worker_cores_max"],
        "worker_memory_gib_max": dask["worker_memory_gib_max"],
        "max_workers_per_cluster": dask["max_workers_per_cluster"],
        "idle_timeout_seconds": dask["idle_timeout_minutes"] * 60,
        "image": image(daskhub),
        "service_account": DATA_SERVICE_ACCOUNT,
        "mount_home_in_workers": dask["mount_home_in_workers"],
        "home_claim": "heliocloud-homes",
        "placement": {
            "scheduler": {"nodeSelector": {NODE_GROUP_LABEL: "core"}},
            "cpu": {"nodeSelector": {NODE_GROUP_LABEL: "dask-worker"}, "tolerations": tolerations([WORKER_TAINT])},
            "gpu": {"nodeSelector": {NODE_GROUP_LABEL: "dask-worker-gpu"},
                    "tolerations": tolerations([WORKER_TAINT, GPU_TAINT])},
        },
    }


def gateway_settings_json(daskhub: dict) -> str:
    return json.dumps(gateway_settings(daskhub), sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- checks beyond the schema
@semantic_check
def _daskhub_checks(cfg: dict) -> Iterable[tuple[list[Any], str]]:
    hub = cfg.get("daskhub") or {}
    if not hub or not cfg["components"]["daskhub"]:
        return
    for name, group in hub["node_groups"].items():
        if group["min_size"] > group["max_size"]:
            yield (["daskhub", "node_groups", name, "min_size"],
                   f"min_size {group['min_size']} is above max_size {group['max_size']}")
    if hub["endpoint_access"] == "private" and cfg["network"]["nat_gateways"] < 1 and not cfg["network"]["vpc_id"]:
        yield (["daskhub", "endpoint_access"],
               "a private API endpoint needs network.nat_gateways >= 1 (the deploy-time kubectl function must "
               "reach the EKS API and the chart repositories from inside the VPC)")
    defaults = [i for i, p in enumerate(hub["profiles"]) if p["default"]]
    if len(defaults) > 1:
        yield ["daskhub", "profiles", defaults[1], "default"], "only one profile can be the default"
    names = [p["name"] for p in hub["profiles"]]
    for i, name in enumerate(names):
        if name in names[:i]:
            yield ["daskhub", "profiles", i, "name"], f"profile name {name!r} is used twice"
    https = hub["https"]
    if bool(https["domain"]) != bool(https["certificate_arn"]):
        yield ["daskhub", "https"], "set both domain and certificate_arn, or neither (CloudFront address)"
