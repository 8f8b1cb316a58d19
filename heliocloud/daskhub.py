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


# ---------------------------------------------------------------- Helm release values
@dataclass(frozen=True)
class HubWiring:
    """Values that come from resources rather than from instance.yaml (tokens at synth time)."""

    hub_url: str          # https://... where researchers reach the hub
    cognito_url: str      # https://<prefix>.auth.<region>.amazoncognito.com
    client_id: str
    client_secret: str
    scratch_bucket: str
    region: str


def deep_merge(base: dict, override: dict) -> dict:
    """Helm's own rule: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def profile_node_group(profile: dict) -> str:
    """The node group a notebook profile spawns on."""
    return "user-gpu" if profile["gpu"] else "user"


def profile_list(daskhub: dict) -> list[dict]:
    """Notebook profiles for KubeSpawner: sizes from config, GPU ones on the `user-gpu` group."""
    profiles = []
    for profile in daskhub["profiles"]:
        memory = f"{profile['memory_gib']}G"
        override: dict[str, Any] = {
            "cpu_guarantee": profile["cpu"], "cpu_limit": profile["cpu"],
            "mem_guarantee": memory, "mem_limit": memory,
            "node_selector": {NODE_GROUP_LABEL: profile_node_group(profile)},
        }
        if profile["gpu"]:
            override["extra_resource_limits"] = {"nvidia.com/gpu": "1"}
            override["tolerations"] = tolerations([USER_TAINT, GPU_TAINT])
        profiles.append({
            "display_name": profile["name"], "slug": profile["name"], "description": profile["description"],
            "default": profile["default"], "kubespawner_override": override,
        })
    return profiles


def release_values(daskhub: dict, *, admins: Iterable[str], wiring: HubWiring) -> dict:
    """The daskhub chart values: helm/daskhub/values.yaml + instance.yaml + the stack's resources."""
    import yaml

    culling = daskhub["culling"]
    cognito = wiring.cognito_url
    generated = {
        "jupyterhub": {
            "hub": {
                "config": {
                    "GenericOAuthenticator": {
                        "client_id": wiring.client_id,
                        "client_secret": wiring.client_secret,
                        "oauth_callback_url": f"{wiring.hub_url}/hub/oauth_callback",
                        "authorize_url": f"{cognito}/oauth2/authorize",
                        "token_url": f"{cognito}/oauth2/token",
                        "userdata_url": f"{cognito}/oauth2/userInfo",
                        "logout_redirect_url": f"{cognito}/logout?client_id={wiring.client_id}"
                                               f"&logout_uri={wiring.hub_url}",
                        "admin_users": sorted(set(admins)),
                    },
                },
            },
            "singleuser": {
                "image": {"name": daskhub["image"]["name"], "tag": daskhub["image"]["tag"]},
                "profileList": profile_list(daskhub),
                "extraEnv": {
                    "AWS_DEFAULT_REGION": wiring.region,
                    "SCRATCH_BUCKET": wiring.scratch_bucket,
                    # KubeSpawner expands {username}: each user gets their own scratch prefix.
                    "SCRATCH_PREFIX": f"s3://{wiring.scratch_bucket}/users/{{username}}/",
                },
            },
            "cull": {
                "enabled": True,
                "timeout": culling["idle_minutes"] * 60,
                "every": 300,
                "maxAge": culling["max_age_hours"] * 3600,
            },
        },
        "dask-gateway": {
            "gateway": {
                "extraConfig": {"heliocloud": GATEWAY_CONFIG.read_text()},
                "env": [{"name": GATEWAY_SETTINGS_ENV, "value": gateway_settings_json(daskhub)}],
                "backend": {
                    "image": {"name": daskhub["image"]["name"], "tag": daskhub["image"]["tag"]},
                    "environment": {"AWS_DEFAULT_REGION": wiring.region},
                },
            },
        },
    }
    return deep_merge(yaml.safe_load(BASE_VALUES.read_text()), generated)


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
    no_nat = cfg["network"]["nat_gateways"] < 1 and not cfg["network"]["vpc_id"]
    why = "the deploy-time kubectl function then runs inside the VPC and must reach the EKS API and the chart repositories"
    if hub["endpoint_access"] == "private" and no_nat:
        yield ["daskhub", "endpoint_access"], f"a private API endpoint needs network.nat_gateways >= 1 ({why})"
    elif hub["api_allowed_cidrs"] != ["0.0.0.0/0"] and no_nat:
        yield ["daskhub", "api_allowed_cidrs"], f"restricting the API endpoint needs network.nat_gateways >= 1 ({why})"
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
