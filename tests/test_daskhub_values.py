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


RELEASE_CHARTS = {"jupyterhub": "jupyterhub", "dask-gateway": "dask-gateway"}


def helm_charts(template: dict) -> dict[str, dict]:
    """The Daskhub's Helm release resources, by chart name."""
    return {r["Properties"]["Chart"]: r for r in template["Resources"].values()
            if r["Type"] == "Custom::AWSCDK-EKS-HelmChart"}


def values_from_template(template: dict) -> dict:
    """Each release's values, by chart name, with deploy-time tokens as "TOKEN"."""
    values = {}
    for chart in RELEASE_CHARTS:
        raw = helm_charts(template)[chart]["Properties"]["Values"]
        parts = raw["Fn::Join"][1] if isinstance(raw, dict) else [raw]
        values[chart] = json.loads("".join(p if isinstance(p, str) else "TOKEN" for p in parts))
    return values


@pytest.fixture(scope="module")
def values(default_templates) -> dict:
    return values_from_template(default_templates["helio-Daskhub"])


@pytest.fixture(scope="module")
def settings() -> dict:
    return InstanceConfig(validate({"instance": {"name": "t-site"}})).daskhub


WIRING = daskhub.HubWiring(hub_url="https://hub.example.edu", cognito_url="https://x.auth.us-east-1.amazoncognito.com",
                           client_id="id", scratch_bucket="scratch", region="us-east-1",
                           client_secret_arn="arn:aws:secretsmanager:us-east-1:111122223333:secret:hub-AbCdEf",
                           hub_role_arn="arn:aws:iam::111122223333:role/hub")


def test_two_releases_on_todays_charts_and_no_daskhub_chart(default_templates):
    charts = helm_charts(default_templates["helio-Daskhub"])
    assert "daskhub" not in charts
    hub, gateway = charts["jupyterhub"]["Properties"], charts["dask-gateway"]["Properties"]
    assert (hub["Version"], hub["Repository"]) == ("4.4.0", "https://hub.jupyter.org/helm-chart/")
    assert (gateway["Version"], gateway["Repository"]) == ("2026.3.0", "https://helm.dask.org")
    assert hub["Namespace"] == gateway["Namespace"] == "daskhub"
    # the gateway reads its service token from the hub release's secret: the hub comes first
    assert any("Chart" in d and "Gateway" not in d for d in charts["dask-gateway"]["DependsOn"])


def test_synthesized_values_are_valid_for_the_charts(values):
    assert schema_errors(values) == []


def test_the_schema_check_catches_unknown_keys_and_wrong_types(values):
    broken = json.loads(json.dumps(values))
    broken["dask-gateway"]["gateway"]["workerCores"] = 4
    broken["jupyterhub"]["cull"]["timeout"] = "an hour"
    errors = schema_errors(broken)
    assert any("workerCores" in e for e in errors) and any("cull.timeout" in e for e in errors)


def test_hub_signs_in_with_cognito_and_reads_the_secret_from_secrets_manager(values):
    hub = values["jupyterhub"]["hub"]
    oauth = hub["config"]["GenericOAuthenticator"]
    assert hub["config"]["JupyterHub"]["authenticator_class"] == "generic-oauth"
    assert oauth["client_id"] == "TOKEN" and "client_secret" not in oauth
    assert oauth["authorize_url"].endswith("/oauth2/authorize") and oauth["token_url"].endswith("/oauth2/token")
    assert oauth["oauth_callback_url"] == "https://TOKEN/hub/oauth_callback"
    assert oauth["admin_groups"] == ["admins"] and oauth["userdata_from_id_token"] is True
    assert oauth["claim_groups_key"] == "cognito:groups" and oauth["manage_groups"] is True
    assert oauth["username_claim"] == "email" and oauth["allow_all"] is True and "allowed_groups" not in oauth
    fetcher = hub["initContainers"][0]
    assert fetcher["image"] == daskhub.AWS_CLI_IMAGE
    assert {"name": "SECRET_ARN", "value": "TOKEN"} in fetcher["env"]
    assert "client_secret" in hub["extraConfig"]["heliocloud-oauth-secret"]
    assert hub["serviceAccount"]["annotations"] == {"eks.amazonaws.com/role-arn": "TOKEN"}


def test_allowed_groups_narrow_sign_in():
    settings = InstanceConfig(validate({"instance": {"name": "t-site"},
                                        "daskhub": {"allowed_groups": ["researchers"]}})).daskhub
    oauth = daskhub.hub_values(settings, admins=[], wiring=WIRING)["hub"]["config"]["GenericOAuthenticator"]
    assert oauth["allowed_groups"] == ["researchers"] and oauth["allow_all"] is False
    assert oauth["admin_groups"] == ["admins"]


def test_no_cognito_secret_in_any_template_or_custom_resource_property(default_templates):
    """The secret moves from Cognito to Secrets Manager inside CloudFormation: only a GetAtt on
    the app client, and nothing that reads it back (DescribeUserPoolClient) at deploy time."""
    for name, template in default_templates.items():
        text = json.dumps(template)
        assert "DescribeUserPoolClient" not in text and "describeUserPoolClient" not in text, name
        for logical_id, resource in template["Resources"].items():
            props = json.dumps(resource.get("Properties", {}))
            if '"ClientSecret"' in props:
                assert resource["Type"] == "AWS::SecretsManager::Secret", (name, logical_id)


def test_notebooks_profiles_images_culling_and_storage(values):
    hub = values["jupyterhub"]
    # The images the stack builds in its ECR repository (a token in the template), tagged by the spec.
    spec = daskhub.image_spec_hash()
    repository = "TOKEN.dkr.ecr.TOKEN.TOKEN/TOKEN"
    assert hub["singleuser"]["image"] == {"name": repository, "tag": f"cpu-{spec}"}
    profiles = {p["slug"]: p["kubespawner_override"] for p in hub["singleuser"]["profileList"]}
    assert list(profiles) == ["small", "medium", "large", "gpu"]
    assert profiles["small"]["node_selector"] == {"heliocloud/node-group": "user"}
    assert profiles["small"]["image"] == f"{repository}:cpu-{spec}"
    assert profiles["gpu"]["node_selector"] == {"heliocloud/node-group": "user-gpu"}
    assert profiles["gpu"]["image"] == f"{repository}:gpu-{spec}"
    assert profiles["gpu"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert {t["key"] for t in profiles["gpu"]["tolerations"]} == {"hub.jupyter.org/dedicated", "nvidia.com/gpu"}
    assert hub["cull"] == {"enabled": True, "timeout": 3600, "every": 300, "maxAge": 86400}
    assert hub["singleuser"]["storage"]["static"] == {"pvcName": "heliocloud-homes", "subPath": "{username}"}
    assert hub["singleuser"]["serviceAccountName"] == daskhub.DATA_SERVICE_ACCOUNT
    assert hub["singleuser"]["extraEnv"]["SCRATCH_PREFIX"] == "s3://TOKEN/users/{username}/"
    assert hub["scheduling"]["userPlaceholder"]["enabled"] is False
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        hub["prePuller"]["extraTolerations"]


def test_gateway_is_a_hub_service_that_checks_hub_scopes(values, settings):
    hub, gateway = values["jupyterhub"], values["dask-gateway"]["gateway"]
    service = f"traefik-{daskhub.GATEWAY_RELEASE}"
    assert hub["hub"]["services"]["dask-gateway"] == {"display": False, "url": f"http://{service}.daskhub"}
    scope = "access:services!service=dask-gateway"
    assert scope in hub["hub"]["loadRoles"]["user"]["scopes"]
    assert scope in hub["hub"]["config"]["Spawner"]["server_token_scopes"]
    env = hub["singleuser"]["extraEnv"]
    assert env["DASK_GATEWAY__ADDRESS"] == "http://proxy-public/services/dask-gateway"
    assert env["DASK_GATEWAY__PROXY_ADDRESS"] == f"gateway://{service}.daskhub:80"
    assert env["DASK_GATEWAY__PUBLIC_ADDRESS"] == "/services/dask-gateway/"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub"
    assert gateway["prefix"] == "/services/dask-gateway"
    assert gateway["auth"]["type"] == "jupyterhub"
    assert gateway["auth"]["jupyterhub"]["jupyterhubServiceName"] == "dask-gateway"
    assert gateway["auth"]["jupyterhub"]["apiTokenFromSecretName"] == "hub"
    assert gateway["auth"]["jupyterhub"]["apiTokenFromSecretKey"] == "hub.services.dask-gateway.apiToken"
    assert gateway["extraConfig"] == {"heliocloud": daskhub.GATEWAY_CONFIG.read_text()}
    assert gateway["env"] == [{"name": daskhub.GATEWAY_SETTINGS_ENV, "value": daskhub.gateway_settings_json(
        settings, image_repository="TOKEN.dkr.ecr.TOKEN.TOKEN/TOKEN")}]
    assert gateway["nodeSelector"] == {"heliocloud/node-group": "core"}
    assert values["dask-gateway"]["traefik"]["service"]["type"] == "ClusterIP"


def test_generated_values_stay_valid_for_a_custom_config():
    settings = InstanceConfig(validate({"instance": {"name": "t-site"}, "daskhub": {
        "profiles": [{"name": "tiny", "cpu": 0.5, "memory_gib": 1.5}], "culling": {"max_age_hours": 0},
        "allowed_groups": ["researchers"]}})).daskhub
    values = {"jupyterhub": daskhub.hub_values(settings, admins=["ada@example.edu"], wiring=WIRING),
              "dask-gateway": daskhub.gateway_values(settings, region="us-east-1")}
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
    assert config.scheduler_extra_pod_config["nodeSelector"] == {"heliocloud/node-group": "user"}
    assert config.scheduler_extra_pod_config["tolerations"] == [
        {"key": "hub.jupyter.org/dedicated", "operator": "Equal", "value": "user", "effect": "NoSchedule"}]
    assert "resources" not in config.worker_extra_container_config
    assert config.image == daskhub.image(settings, "cpu")
    assert config.scheduler_cmd == ["dask", "scheduler"] and config.worker_cmd == ["dask", "worker"]
    assert config.idle_timeout == 1800 and config.cluster_max_workers == 50


@pytest.mark.parametrize("profile", ["gpu", "gpu-xlarge"])
def test_gpu_profile_asks_for_a_gpu_on_the_gpu_workers(settings, monkeypatch, profile):
    c = kubernetes_gateway(settings, monkeypatch)
    config = cluster_config(c, profile=profile, image="pangeo/ml-notebook:2024.11.11")
    assert config.worker_extra_pod_config["nodeSelector"] == {"heliocloud/node-group": "dask-worker-gpu"}
    assert {t["key"] for t in config.worker_extra_pod_config["tolerations"]} == {"k8s.dask.org/dedicated",
                                                                                 "nvidia.com/gpu"}
    assert config.worker_extra_container_config["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert config.image == "pangeo/ml-notebook:2024.11.11"


def test_gpu_workers_on_the_default_image_get_the_gpu_image(settings, monkeypatch):
    """A GPU worker pod asked for as the tutorials do (`options.profile = "gpu-xlarge"`, the
    notebook's own image as the default) has one GPU and the GPU image."""
    c = kubernetes_gateway(settings, monkeypatch)
    config = cluster_config(c, profile="gpu-xlarge", image=daskhub.image(settings, "cpu"))
    assert config.image == daskhub.image(settings, "gpu") == f"heliocloud-researcher:gpu-{daskhub.image_spec_hash()}"
    assert config.worker_extra_container_config["resources"] == {"limits": {"nvidia.com/gpu": 1}}
    assert cluster_config(c, profile="cpu").image == daskhub.image(settings, "cpu")


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
