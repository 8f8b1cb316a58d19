"""The Daskhub's config-derived facts, as pure functions shared by the CDK stack, the sandbox's
local gateway and `heliocloud doctor`.

Placement follows the JupyterHub and Dask Gateway conventions: ``hub.jupyter.org/node-purpose``
(core|user) with the ``hub.jupyter.org/dedicated=user`` taint on notebook nodes,
``k8s.dask.org/node-purpose`` (scheduler|worker) with the ``k8s.dask.org/dedicated=worker`` taint
on worker nodes (Dask schedulers share the on-demand notebook nodes, so the core node runs no
researcher image and can be a small ARM node), and ``nvidia.com/gpu=present`` tainting every GPU node so only pods that ask for
a GPU land there. ``heliocloud/node-group`` names the group a node belongs to.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from heliocloud.config import semantic_check

REPO = Path(__file__).resolve().parents[1]
GATEWAY_CONFIG = REPO / "helm" / "daskhub" / "gateway_config.py"
HUB_VALUES = REPO / "helm" / "daskhub" / "jupyterhub.values.yaml"
GATEWAY_VALUES = REPO / "helm" / "daskhub" / "dask-gateway.values.yaml"
# The HelioCloud environment spec and a Dockerfile per researcher image (built by the stack).
IMAGES_DIR = REPO / "helm" / "images"
IMAGE_KINDS = ("cpu", "gpu")
# Repository name of the built images where no ECR repository exists (sandbox, tests); the stack
# passes its ECR repository's URI instead.
LOCAL_IMAGE_REPOSITORY = "heliocloud-researcher"

# The gateway_config.py reads its instance-specific settings from this environment variable of
# the gateway pod (the chart's `gateway.env`), so the file itself is the same everywhere.
GATEWAY_SETTINGS_ENV = "HELIOCLOUD_GATEWAY_SETTINGS"
NODE_GROUP_LABEL = "heliocloud/node-group"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
USER_TAINT = {"key": "hub.jupyter.org/dedicated", "value": "user", "effect": "NoSchedule"}
WORKER_TAINT = {"key": "k8s.dask.org/dedicated", "value": "worker", "effect": "NoSchedule"}
# Notebooks and Dask pods run as this service account: IRSA gives it the data-bucket role.
DATA_SERVICE_ACCOUNT = "heliocloud-user"
# The hub release keeps the name the daskhub chart's release had: `helm upgrade daskhub` onto the
# jupyterhub chart keeps every hub resource of the same name (hub-db-dir, the hub secret with its
# cookie secret and service tokens) and removes only the old gateway's, whose names differ from
# the new gateway release's (docs/admin/daskhub.md, "Upgrading from the daskhub chart").
HUB_RELEASE = "daskhub"
GATEWAY_RELEASE = "dask-gateway"
# The hub service the gateway is: its name is in the access scope users' tokens must carry.
GATEWAY_SERVICE = "dask-gateway"
# The dask-gateway chart names its proxy Service traefik-<fullname>; fullname = the release name
# when that contains the chart name.
GATEWAY_PROXY_SERVICE = f"traefik-{GATEWAY_RELEASE}"
# The hub's init container that fetches the Cognito client secret (AWS CLI v2, pinned).
AWS_CLI_IMAGE = "public.ecr.aws/aws-cli/aws-cli:2.27.0"


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

    @property
    def arm64(self) -> bool:
        """Graviton instance types (t4g, m7g, c7gn, g5g, ...): the group needs an ARM AMI."""
        return all(is_arm64(t) for t in self.instance_types)

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
    "core": ({"hub.jupyter.org/node-purpose": "core"}, []),
    "user": ({"hub.jupyter.org/node-purpose": "user", "k8s.dask.org/node-purpose": "scheduler"}, [USER_TAINT]),
    "user-gpu": ({"hub.jupyter.org/node-purpose": "user"}, [USER_TAINT, GPU_TAINT]),
    "dask-worker": ({"k8s.dask.org/node-purpose": "worker"}, [WORKER_TAINT]),
    "dask-worker-gpu": ({"k8s.dask.org/node-purpose": "worker"}, [WORKER_TAINT, GPU_TAINT]),
}
NODE_GROUPS = tuple(_PURPOSE)


def is_arm64(instance_type: str) -> bool:
    """EC2's naming: a Graviton family has a `g` right after its generation digit (t4g, m7gd)."""
    family = instance_type.split(".")[0]
    return re.fullmatch(r"[a-z]+[0-9]+g[a-z-]*", family) is not None


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


def image_spec_hash(folder: Path = IMAGES_DIR) -> str:
    """12 hex digits of the image build context's content (paths and bytes): the built images'
    tags, so a changed spec or Dockerfile gives new tags and notebooks roll forward."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def image_spec_pins(folder: Path = IMAGES_DIR) -> dict[str, str]:
    """Exact pins (`name==version`) of the HelioCloud environment spec, by normalised name."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {}
    for line in (folder / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = next((s.version for s in req.specifier if s.operator == "=="), "")
    return pins


def image_ref(daskhub: dict, kind: str, repository: str = LOCAL_IMAGE_REPOSITORY) -> dict[str, str]:
    """{name, tag} of the researcher image of that kind (cpu | gpu): the instance-built one in
    `repository`, or the admin's pinned image when `images.build` is false."""
    images = daskhub["images"]
    if images["build"]:
        return {"name": repository, "tag": f"{kind}-{image_spec_hash()}"}
    return {"name": images[kind]["name"], "tag": images[kind]["tag"]}


def image(daskhub: dict, kind: str = "cpu", repository: str = LOCAL_IMAGE_REPOSITORY) -> str:
    """`name:tag` of the researcher image of that kind (cpu | gpu)."""
    ref = image_ref(daskhub, kind, repository)
    return f"{ref['name']}:{ref['tag']}"


def gateway_settings(daskhub: dict, *, image_repository: str = LOCAL_IMAGE_REPOSITORY) -> dict[str, Any]:
    """What gateway_config.py needs from instance.yaml (serialised into GATEWAY_SETTINGS_ENV)."""
    dask = daskhub["dask"]
    return {
        "worker_cores_max": dask["worker_cores_max"],
        "worker_memory_gib_max": dask["worker_memory_gib_max"],
        "max_workers_per_cluster": dask["max_workers_per_cluster"],
        "idle_timeout_seconds": dask["idle_timeout_minutes"] * 60,
        "image": image(daskhub, "cpu", image_repository),
        "gpu_image": image(daskhub, "gpu", image_repository),
        # Worker profile name -> hardware (cpu | gpu): `options.profile` in notebooks.
        "worker_profiles": {p["name"]: "gpu" if p["gpu"] else "cpu" for p in dask["worker_profiles"]},
        "service_account": DATA_SERVICE_ACCOUNT,
        "mount_home_in_workers": dask["mount_home_in_workers"],
        "home_claim": "heliocloud-homes",
        "placement": {
            # On-demand (a reclaimed scheduler loses its whole cluster), beside the notebooks.
            "scheduler": {"nodeSelector": {NODE_GROUP_LABEL: "user"}, "tolerations": tolerations([USER_TAINT])},
            "cpu": {"nodeSelector": {NODE_GROUP_LABEL: "dask-worker"}, "tolerations": tolerations([WORKER_TAINT])},
            "gpu": {"nodeSelector": {NODE_GROUP_LABEL: "dask-worker-gpu"},
                    "tolerations": tolerations([WORKER_TAINT, GPU_TAINT])},
        },
    }


def gateway_settings_json(daskhub: dict, *, image_repository: str = LOCAL_IMAGE_REPOSITORY) -> str:
    return json.dumps(gateway_settings(daskhub, image_repository=image_repository), sort_keys=True,
                      separators=(",", ":"))


# ---------------------------------------------------------------- Helm release values
@dataclass(frozen=True)
class HubWiring:
    """Values that come from resources rather than from instance.yaml (tokens at synth time).
    The Cognito client secret is not among them: the hub reads it from Secrets Manager."""

    hub_url: str          # https://... where researchers reach the hub
    cognito_url: str      # https://<prefix>.auth.<region>.amazoncognito.com
    client_id: str
    scratch_bucket: str
    region: str
    client_secret_arn: str = ""   # Secrets Manager secret holding the Cognito client secret
    hub_role_arn: str = ""        # IAM role of the hub's service account (reads that secret)
    image_repository: str = LOCAL_IMAGE_REPOSITORY   # ECR repository of the built images


def deep_merge(base: dict, override: dict) -> dict:
    """Helm's own rule: maps merge key by key, anything else is replaced."""
    out = dict(base)
    for key, value in override.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def profile_node_group(profile: dict) -> str:
    """The node group a notebook profile spawns on."""
    return "user-gpu" if profile["gpu"] else "user"


def profile_image(daskhub: dict, profile: dict, repository: str = LOCAL_IMAGE_REPOSITORY) -> str:
    """GPU notebooks run the GPU image (CUDA, PyTorch); the others the CPU image."""
    return image(daskhub, "gpu" if profile["gpu"] else "cpu", repository)


def profile_list(daskhub: dict, *, image_repository: str = LOCAL_IMAGE_REPOSITORY) -> list[dict]:
    """Notebook profiles for KubeSpawner: sizes from config, GPU ones on the `user-gpu` group."""
    profiles = []
    for profile in daskhub["profiles"]:
        memory = f"{profile['memory_gib']}G"
        override: dict[str, Any] = {
            "cpu_guarantee": profile["cpu"], "cpu_limit": profile["cpu"],
            "mem_guarantee": memory, "mem_limit": memory,
            "node_selector": {NODE_GROUP_LABEL: profile_node_group(profile)},
            "image": profile_image(daskhub, profile, image_repository),
        }
        if profile["gpu"]:
            override["extra_resource_limits"] = {"nvidia.com/gpu": "1"}
            override["tolerations"] = tolerations([USER_TAINT, GPU_TAINT])
        profiles.append({
            "display_name": profile["name"], "slug": profile["name"], "description": profile["description"],
            "default": profile["default"], "kubespawner_override": override,
        })
    return profiles


def oauth_config(daskhub: dict, *, admins: Iterable[str], wiring: HubWiring) -> dict:
    """GenericOAuthenticator settings beyond the base values: Cognito's endpoints, the client, the
    admins named in config, and the sign-in gate (`allowed_groups`, else every pool member)."""
    cognito = wiring.cognito_url
    allowed = list(daskhub["allowed_groups"])
    return {
        "client_id": wiring.client_id,
        "oauth_callback_url": f"{wiring.hub_url}/hub/oauth_callback",
        "authorize_url": f"{cognito}/oauth2/authorize",
        "token_url": f"{cognito}/oauth2/token",
        # No userdata_url: the user comes from the ID token (userdata_from_id_token in the base
        # values), and OAuthenticator 17 refuses both at once.
        "logout_redirect_url": f"{cognito}/logout?client_id={wiring.client_id}&logout_uri={wiring.hub_url}",
        "admin_users": sorted(set(admins)),
        # The Cognito pool is the allow-list unless config narrows sign-in to some groups.
        **({"allowed_groups": allowed, "allow_all": False} if allowed else {"allow_all": True}),
    }


def hub_values(daskhub: dict, *, admins: Iterable[str], wiring: HubWiring) -> dict:
    """The jupyterhub chart values: helm/daskhub/jupyterhub.values.yaml + instance.yaml + the
    stack's resources."""
    import yaml

    culling = daskhub["culling"]
    namespace = daskhub["charts"]["namespace"]
    generated = {
        "hub": {
            "config": {"GenericOAuthenticator": oauth_config(daskhub, admins=admins, wiring=wiring)},
            "services": {"dask-gateway": {"url": f"http://{GATEWAY_PROXY_SERVICE}.{namespace}"}},
            "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": wiring.hub_role_arn}},
            "initContainers": [client_secret_fetcher(wiring)],
            "extraVolumes": [{"name": "oauth-secret", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}],
            "extraVolumeMounts": [{"name": "oauth-secret", "mountPath": "/etc/heliocloud/oauth", "readOnly": True}],
        },
        "singleuser": {
            "image": image_ref(daskhub, "cpu", wiring.image_repository),
            "profileList": profile_list(daskhub, image_repository=wiring.image_repository),
            "extraEnv": {
                "AWS_DEFAULT_REGION": wiring.region,
                "SCRATCH_BUCKET": wiring.scratch_bucket,
                # KubeSpawner expands {username}: each user gets their own scratch prefix.
                "SCRATCH_PREFIX": f"s3://{wiring.scratch_bucket}/users/{{username}}/",
                "DASK_GATEWAY__PROXY_ADDRESS": f"gateway://{GATEWAY_PROXY_SERVICE}.{namespace}:80",
                # Where CatalogRegistry() finds this instance's buckets (the sandbox serves its own).
                **({"ROOT_CATALOG_REGISTRY_URL": daskhub["catalog_registry_url"]}
                   if daskhub.get("catalog_registry_url") else {}),
            },
        },
        "cull": {
            "enabled": True,
            "timeout": culling["idle_minutes"] * 60,
            "every": 300,
            "maxAge": culling["max_age_hours"] * 3600,
        },
    }
    return deep_merge(yaml.safe_load(HUB_VALUES.read_text()), generated)


def client_secret_fetcher(wiring: HubWiring) -> dict:
    """Init container of the hub pod: the Cognito client secret from Secrets Manager into the
    memory volume the hub's extraConfig reads (IRSA gives it the hub's role)."""
    script = ('aws secretsmanager get-secret-value --secret-id "$SECRET_ARN" --query SecretString '
              '--output text > /etc/heliocloud/oauth/client_secret')
    return {
        "name": "oauth-client-secret", "image": AWS_CLI_IMAGE, "command": ["sh", "-c", script],
        "env": [{"name": "SECRET_ARN", "value": wiring.client_secret_arn},
                {"name": "AWS_REGION", "value": wiring.region}, {"name": "HOME", "value": "/tmp"}],
        "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False},
        "volumeMounts": [{"name": "oauth-secret", "mountPath": "/etc/heliocloud/oauth"}],
    }


def gateway_values(daskhub: dict, *, region: str, image_repository: str = LOCAL_IMAGE_REPOSITORY) -> dict:
    """The dask-gateway chart values: helm/daskhub/dask-gateway.values.yaml + instance.yaml, with
    helm/daskhub/gateway_config.py as the gateway's extraConfig."""
    import yaml

    generated = {
        "gateway": {
            "extraConfig": {"heliocloud": GATEWAY_CONFIG.read_text()},
            "env": [{"name": GATEWAY_SETTINGS_ENV,
                     "value": gateway_settings_json(daskhub, image_repository=image_repository)}],
            "backend": {
                "image": image_ref(daskhub, "cpu", image_repository),
                "environment": {"AWS_DEFAULT_REGION": region},
            },
        },
    }
    return deep_merge(yaml.safe_load(GATEWAY_VALUES.read_text()), generated)


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
    workers = [p["name"] for p in hub["dask"]["worker_profiles"]]
    for i, name in enumerate(workers):
        if name in workers[:i]:
            yield ["daskhub", "dask", "worker_profiles", i, "name"], f"worker profile name {name!r} is used twice"
    for name, group in hub["node_groups"].items():
        arm = {is_arm64(t) for t in group["instance_types"]}
        if len(arm) > 1:
            yield (["daskhub", "node_groups", name, "instance_types"],
                   "mixes ARM (Graviton) and x86 types: one AMI serves a group, pick one architecture")
        elif arm == {True} and name != "core":
            yield (["daskhub", "node_groups", name, "instance_types"],
                   "ARM types only on the core group: the researcher images are built for x86")
    if not hub["images"]["build"]:
        for kind in IMAGE_KINDS:
            if kind not in hub["images"]:
                yield ["daskhub", "images", kind], f"images.build is false: set the {kind} image (name and tag)"
    https = hub["https"]
    if bool(https["domain"]) != bool(https["certificate_arn"]):
        yield ["daskhub", "https"], "set both domain and certificate_arn, or neither (CloudFront address)"
