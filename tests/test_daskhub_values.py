"""The daskhub Helm values as synthesized, checked against the charts' own values schemas, and the
gateway config as it behaves on the Kubernetes backend."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from heliocloud import daskhub
from heliocloud.config import InstanceConfig, validate

pytestmark = pytest.mark.unit
CHART_SCHEMA_FILES = {"jupyterhub": "jupyterhub.values.schema.yaml", "dask-gateway": "dask-gateway.values.schema.yaml"}
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "chart-schemas"


def chart_schema(part: str) -> dict:
    """The chart's values schema, vendored unchanged beside the tests (see its SOURCES.txt)."""
    return yaml.safe_load((SCHEMA_DIR / CHART_SCHEMA_FILES[part]).read_text())


def schema_errors(values: dict) -> list[str]:
    """Type errors and unknown keys against each subchart's schema. `required` errors are expected:
    Helm validates the merge of the chart's defaults and these values, which supply the rest."""
    errors = []
    for part in CHART_SCHEMA_FILES:
        validator = jsonschema.validators.validator_for(chart_schema(part))(chart_schema(part))
        errors += [f"{part}.{'.'.join(map(str, e.absolute_path))}: {e.message}"
                   for e in validator.iter_errors(values[part]) if e.validator != "required"]
    return errors


def values_from_template(template: dict) -> dict:
    chart = next(r["Properties"] for r in template["Resources"].values()
                 if r["Type"] == "Custom::AWSCDK-EKS-HelmChart" and r["Properties"]["Chart"] == "daskhub")
    parts = chart["Values"]["Fn::Join"][1]
    return json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))


@pytest.fixture(scope="module")
def values(default_templates) -> dict:
    return values_from_template(default_templates["helio-Daskhub"])


@pytest.fixture(scope="module")
def settings() -> dict:
    return InstanceConfig(validate({"instance": {"name": "t-site"}})).daskhub


def test_synthesized_values_are_valid_for_the_charts(values):
    assert schema_errors(values) == []


def test_the_schema_check_catches_unknown_keys_and_wrong_types(values):
    broken = json.loads(json.dumps(values))
    broken["dask-gateway"]["gateway"]["workerCores"] = 4
    broken["jupyterhub"]["cull"]["timeout"] = "an hour"
    errors = schema_errors(broken)
    assert any("workerCores" in e for e in errors) and any("cull.timeout" in e for e in errors)


def test_hub_signs_in_with_cognito(values):
    oauth = values["jupyterhub"]["hub"]["config"]["GenericOAuthenticator"]
    assert values["jupyterhub"]["hub"]["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert oauth["client_id"] == "TOKEN" and oauth["client_secret"] == "TOKEN"
    assert oauth["authorize_url"].endswith("/oauth2/authorize") and oauth["token_url"].endswith("/oauth2/token")
    assert oauth["oauth_callback_url"] == "https://TOKEN/hub/oauth_callback"
    assert oauth["admin_groups"] == ["admins"] and oauth["userdata_from_id_token"] is True
    assert oauth["username_claim"] == "email"


def test_notebooks_profiles_image_culling_and_storage(values):
    hub = values["jupyterhub"]
    assert hub["singleuser"]["image"] == {"name": "pangeo/pangeo-notebook", "tag": "2024.11.11"}
    profiles = {p["slug"]: p["kubespawner_override"] for p in hub["singleuser"]["profileList"]}
    assert list(profiles) == ["small", "medium", "large", "gpu"]
    assert profiles["small"]["node_selector"] == {"heliocloud/node-group": "user"}
    assert profiles["gpu"]["node_selector"] == {"heliocloud/node-group": "user-gpu"}
    assert profiles["gpu"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert {t["key"] for t in profiles["gpu"]["tolerations"]} == {"hub.jupyter.org/dedicated", "nvidia.com/gpu"}
    assert hub["cull"] == {"enabled": True, "timeout": 3600, "every": 300, "maxAge": 86400}
    assert hub["singleuser"]["storage"]["static"] == {"pvcName": "heliocloud-homes", "subPath": "{username}"}
    assert hub["singleuser"]["serviceAccountName"] == daskhub.DATA_SERVICE_ACCOUNT
    assert hub["singleuser"]["extraEnv"]["SCRATCH_PREFIX"] == "s3://TOKEN/users/{username}/"
    assert hub["scheduling"]["userPlaceholder"]["enabled"] is False


def test_gateway_runs_the_shipped_config_with_hub_auth(values, settings):
    gateway = values["dask-gateway"]["gateway"]
    assert gateway["extraConfig"] == {"heliocloud": daskhub.GATEWAY_CONFIG.read_text()}
    assert gateway["env"] == [{"name": daskhub.GATEWAY_SETTINGS_ENV, "value": daskhub.gateway_settings_json(settings)}]
    assert gateway["auth"]["type"] == "jupyterhub"
    assert gateway["auth"]["jupyterhub"] == {"apiTokenFromSecretName": "hub",
                                             "apiTokenFromSecretKey": "hub.services.dask-gateway.apiToken"}
    assert gateway["nodeSelector"] == {"heliocloud/node-group": "core"}
    assert values["dask-gateway"]["traefik"]["service"]["type"] == "ClusterIP"


def test_generated_values_stay_valid_for_a_custom_config():
    settings = InstanceConfig(validate({"instance": {"name": "t-site"}, "daskhub": {
        "profiles": [{"name": "tiny", "cpu": 0.5, "memory_gib": 1.5}], "culling": {"max_age_hours": 0}}})).daskhub
    wiring = daskhub.HubWiring(hub_url="https://hub.example.edu", cognito_url="https://x.auth.us-east-1.amazoncognito.com",
                               client_id="id", client_secret="secret", scratch_bucket="scratch", region="us-east-1")
    values = daskhub.release_values(settings, admins=["ada@example.edu"], wiring=wiring)
    assert schema_errors(values) == []
    assert values["jupyterhub"]["cull"]["maxAge"] == 0
    assert values["jupyterhub"]["singleuser"]["profileList"][0]["kubespawner_override"]["mem_limit"] == "1.5G"


# ---------------------------------------------------------------- gateway_config.py on Kubernetes
def kubernetes_gateway(settings: dict, monkeypatch) -> Config:
    """Execute gateway_config.py as the chart does (after the chart set the Kubernetes backend)."""
    monkeypatch.setenv(daskhub.GATEWAY_SETTINGS_ENV, daskhub.gateway_settings_json(settings))
    c = Config()
    c.DaskGateway.backend_class = "dask_gateway_server.backends.kubernetes.KubeBackend"
    path = str(daskhub.GATEWAY_CONFIG)
    exec(compile(daskhub.GATEWAY_CONFIG.read_text(), path, "exec"), {"c": c, "__file__": path})
    return c


def cluster_config(c: Config, **requested):
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    options = c.Backend.cluster_options
    overrides = options.get_configuration(options.parse_options(requested), SimpleNamespace(name="ada"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unknown key would only warn: make it fail
        return KubeClusterConfig(config=c, **overrides)


def test_cpu_workers_land_on_spot_workers_and_schedulers_on_core(settings, monkeypatch):
    c = kubernetes_gateway(settings, monkeypatch)
    config = cluster_config(c, worker_cores=4, worker_memory=4)
    assert (config.worker_cores, config.worker_cores_limit) == (4, 4)
    assert config.worker_memory == config.worker_memory_limit == 4 * 2**30
    assert config.worker_extra_pod_config["nodeSelector"] == {"heliocloud/node-group": "dask-worker"}
    assert config.worker_extra_pod_config["tolerations"] == [
        {"key": "k8s.dask.org/dedicated", "operator": "Equal", "value": "worker", "effect": "NoSchedule"}]
    assert config.worker_extra_pod_config["serviceAccountName"] == "heliocloud-user"
    assert config.scheduler_extra_pod_config["nodeSelector"] == {"heliocloud/node-group": "core"}
    assert "resources" not in config.worker_extra_container_config
    assert config.image == "pangeo/pangeo-notebook:2024.11.11"
    assert config.scheduler_cmd == ["dask", "scheduler"] and config.worker_cmd == ["dask", "worker"]
    assert config.idle_timeout == 1800 and config.cluster_max_workers == 50


def test_gpu_profile_asks_for_a_gpu_on_the_gpu_workers(settings, monkeypatch):
    c = kubernetes_gateway(settings, monkeypatch)
    config = cluster_config(c, profile="gpu", image="pangeo/ml-notebook:2024.11.11")
    assert config.worker_extra_pod_config["nodeSelector"] == {"heliocloud/node-group": "dask-worker-gpu"}
    assert {t["key"] for t in config.worker_extra_pod_config["tolerations"]} == {"k8s.dask.org/dedicated",
                                                                                 "nvidia.com/gpu"}
    assert config.worker_extra_container_config["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert config.image == "pangeo/ml-notebook:2024.11.11"


def test_homes_can_be_mounted_into_workers(settings, monkeypatch):
    settings = {**settings, "dask": {**settings["dask"], "mount_home_in_workers": True}}
    c = kubernetes_gateway(settings, monkeypatch)
    options = c.Backend.cluster_options
    overrides = options.get_configuration(options.parse_options({}), SimpleNamespace(name="ada.lovelace@site.edu"))
    assert overrides["worker_extra_container_config"]["volumeMounts"][0]["subPath"] == "ada-2elovelace-40site-2eedu"
    config = cluster_config(c)
    assert config.worker_extra_pod_config["volumes"] == [
        {"name": "home", "persistentVolumeClaim": {"claimName": "heliocloud-homes"}}]
    assert config.worker_extra_container_config["volumeMounts"] == [
        {"name": "home", "mountPath": "/home/jovyan", "subPath": "ada"}]


def test_out_of_range_options_are_refused_naming_the_option(settings, monkeypatch):
    c = kubernetes_gateway(settings, monkeypatch)
    for requested, name in [({"worker_cores": 9}, "worker_cores"), ({"worker_memory": 64}, "worker_memory"),
                            ({"profile": "tpu"}, "profile")]:
        with pytest.raises(ValueError, match=name):
            c.Backend.cluster_options.parse_options(requested)


def test_the_dask_commands_the_config_uses_exist():
    """distributed 2026 removed `dask-scheduler`/`dask-worker`; `dask scheduler|worker` must work."""
    dask = Path(sys.executable).with_name("dask")
    for command in ("scheduler", "worker"):
        result = subprocess.run([str(dask), command, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "Usage" in result.stdout
    assert not Path(sys.executable).with_name("dask-scheduler").exists()


def test_scheduler_resources_forwarded_by_the_chart_parse(values):
    """The chart copies gateway.backend.scheduler.* onto KubeClusterConfig; the strings must parse."""
    from dask_gateway_server.backends.kubernetes.backend import KubeClusterConfig

    scheduler = values["dask-gateway"]["gateway"]["backend"]["scheduler"]
    c = Config()
    c.KubeClusterConfig.scheduler_cores = scheduler["cores"]["request"]
    c.KubeClusterConfig.scheduler_cores_limit = scheduler["cores"]["limit"]
    c.KubeClusterConfig.scheduler_memory = scheduler["memory"]["request"]
    c.KubeClusterConfig.scheduler_memory_limit = scheduler["memory"]["limit"]
    config = KubeClusterConfig(config=c)
    assert (config.scheduler_cores, config.scheduler_memory) == (0.25, 2**30)
    assert (config.scheduler_cores_limit, config.scheduler_memory_limit) == (1, 2 * 2**30)
