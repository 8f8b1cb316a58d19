"""The pieces of the sandbox hub on their own: its config rendered from the shipped chart values
(profiles, extraEnv, culling), the profile spawner's choices and limits, the researcher
environment's lock, and the hosted sign-in's refusals against a real moto user pool."""
from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
import requests

from heliocloud import daskhub
from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import auth as sandbox_auth
from heliocloud.sandbox.daskhub import hub_client
from heliocloud.sandbox.hub import IDLE_CULLER, LocalHub
from heliocloud.sandbox.signin import HostedSignIn
from heliocloud.sandbox.spawner import ProfileLocalSpawner

REPO = Path(__file__).resolve().parents[1]
CONFIG = load(REPO / "instance.yaml")
WIRING = daskhub.HubWiring(hub_url="http://127.0.0.1:8000", cognito_url="http://127.0.0.1:9000", client_id="hub",
                           scratch_bucket="helio-scratch", region="us-east-1")
VALUES = daskhub.hub_values(CONFIG.daskhub, admins=[], wiring=WIRING)


@pytest.mark.unit
def test_the_local_hub_renders_profiles_env_and_culling_from_the_shipped_values(tmp_path):
    hub = LocalHub(VALUES, workdir=tmp_path, notebook_env={"DASK_GATEWAY__ADDRESS": "http://127.0.0.1:1/x"})
    sections = hub.config_sections()
    spawner = sections["ProfileLocalSpawner"]
    assert spawner["profile_list"] == VALUES["singleuser"]["profileList"]
    assert [p["slug"] for p in spawner["profile_list"]] == [p["name"] for p in CONFIG.daskhub["profiles"]]
    env = sections["Spawner"]["environment"]
    # extraEnv as shipped, with the in-cluster gateway address replaced for loopback.
    assert env["SCRATCH_PREFIX"] == "s3://helio-scratch/users/{username}/"
    assert env["DASK_GATEWAY__AUTH__TYPE"] == "jupyterhub" and env["DASK_GATEWAY__ADDRESS"] == "http://127.0.0.1:1/x"
    assert sections["Spawner"]["server_token_scopes"] == VALUES["hub"]["config"]["Spawner"]["server_token_scopes"]
    assert sections["Spawner"]["default_url"] == "/lab"
    culling = CONFIG.daskhub["culling"]
    assert hub.culler_command()[4:] == [f"--timeout={culling['idle_minutes'] * 60}", "--cull-every=300",
                                        "--concurrency=10", f"--max-age={culling['max_age_hours'] * 3600}"]
    assert {"name": IDLE_CULLER, "command": hub.culler_command()} in hub.services()
    assert "delete:servers" in next(r for r in hub.load_roles() if r["name"] == IDLE_CULLER)["scopes"]
    # The configured hour: activity is reported at JupyterHub's own pace.
    assert "JUPYTERHUB_ACTIVITY_INTERVAL" not in env


@pytest.mark.unit
def test_a_short_cull_timeout_makes_servers_report_activity_sooner(tmp_path):
    hub = LocalHub(VALUES, workdir=tmp_path, cull={"timeout": 60, "every": 15})
    sections = hub.config_sections()
    assert sections["Spawner"]["environment"]["JUPYTERHUB_ACTIVITY_INTERVAL"] == "15"
    assert sections["JupyterHub"]["last_activity_interval"] == 15
    assert "--timeout=60" in hub.culler_command()


def spawner_with(choice: str | None) -> ProfileLocalSpawner:
    spawner = ProfileLocalSpawner(profile_list=VALUES["singleuser"]["profileList"], image="repo:cpu-1")
    spawner.user_options = {"profile": choice} if choice else {}
    return spawner


@pytest.mark.unit
def test_the_spawn_form_offers_every_profile_and_checks_the_default():
    form = spawner_with(None).options_form
    assert re.findall(r'value="([^"]+)"', form) == [p["name"] for p in CONFIG.daskhub["profiles"]]
    default = next(p["name"] for p in CONFIG.daskhub["profiles"] if p.get("default"))
    assert re.search(rf'value="{default}" checked', form)
    assert spawner_with(None).options_from_form({"profile": ["large"]}) == {"profile": "large"}


@pytest.mark.unit
def test_the_chosen_profile_decides_the_limits_and_an_unknown_one_is_refused():
    assert spawner_with(None).profile()["slug"] == "small"
    assert spawner_with("large").profile()["kubespawner_override"]["mem_limit"] == "12G"
    with pytest.raises(ValueError, match="no profile 'huge'"):
        spawner_with("huge").profile()


@pytest.mark.unit
def test_the_researcher_lock_keeps_every_pin_of_the_image_spec():
    """The sandbox installs helm/images/requirements.txt itself; its 3.11 lock may differ from the
    images' only in packages that the spec does not pin (newer releases needing Python 3.12)."""
    def pins(path: Path) -> dict[str, str]:
        out = {}
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==")
                out[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version.strip()
        return out

    spec = pins(REPO / "helm" / "images" / "requirements.txt")
    lock = pins(REPO / "heliocloud" / "sandbox" / "researcher-constraints-py311.txt")
    images = pins(REPO / "helm" / "images" / "constraints.txt")
    assert {name: lock.get(name) for name in spec} == spec
    differing = {name for name in lock if name in images and lock[name] != images[name]}
    assert differing <= {"contourpy", "drms", "numcodecs", "pims", "pywavelets", "tifffile", "zarr"}


# ---------------------------------------------------------------- hosted sign-in (moto)
@pytest.fixture
def signin(moto, tmp_path):
    sandbox = Sandbox(config=CONFIG, state_dir=tmp_path, aws_url=moto.url)
    sandbox_auth.start(sandbox)
    cognito = sandbox.client("cognito-idp")
    pool_id = sandbox.endpoints["cognito"]["user_pool_id"]
    client = hub_client(cognito, pool_id, "http://127.0.0.1:8000")
    server = HostedSignIn(cognito, pool_id).start()
    yield SimpleNamespace(server=server, client=client, users=sandbox.endpoints["users"])
    server.stop()


def authorize_query(client: dict, **override) -> str:
    return urlencode({"response_type": "code", "client_id": client["ClientId"], "scope": "openid email",
                      "redirect_uri": client["CallbackURLs"][0], "state": "s1", **override})


@pytest.mark.moto
def test_sign_in_refuses_unknown_clients_foreign_redirects_and_wrong_passwords(signin):
    url, client = signin.server.url, signin.client
    assert requests.get(f"{url}/oauth2/authorize?{authorize_query(client)}", timeout=10).status_code == 200
    assert requests.get(f"{url}/oauth2/authorize?{authorize_query(client, client_id='nope')}", timeout=10).status_code == 400
    evil = authorize_query(client, redirect_uri="http://evil.example/cb")
    assert requests.get(f"{url}/oauth2/authorize?{evil}", timeout=10).status_code == 400
    alice = signin.users["alice"]
    wrong = requests.post(f"{url}/oauth2/authorize?{authorize_query(client)}", allow_redirects=False, timeout=30,
                          data={"email": alice["email"], "password": "Wrong-Password-1!"})
    assert wrong.status_code == 401 and "Wrong e-mail or password" in wrong.text


@pytest.mark.moto
def test_a_code_is_exchanged_once_and_only_with_the_client_secret(signin):
    url, client = signin.server.url, signin.client
    alice = signin.users["alice"]
    back = requests.post(f"{url}/oauth2/authorize?{authorize_query(client)}", allow_redirects=False, timeout=30,
                         data={"email": alice["email"], "password": alice["password"]})
    assert back.status_code == 302 and back.headers["Location"].startswith(client["CallbackURLs"][0])
    code = re.search(r"code=([^&]+)", back.headers["Location"]).group(1)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": client["CallbackURLs"][0]}
    assert requests.post(f"{url}/oauth2/token", data=form, auth=(client["ClientId"], "wrong"), timeout=10).status_code == 401
    tokens = requests.post(f"{url}/oauth2/token", data=form, auth=(client["ClientId"], client["ClientSecret"]), timeout=10)
    assert tokens.status_code == 200 and {"id_token", "access_token"} <= set(tokens.json())
    again = requests.post(f"{url}/oauth2/token", data=form, auth=(client["ClientId"], client["ClientSecret"]), timeout=10)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


@pytest.mark.unit
def test_the_catalog_registry_url_reaches_notebooks_in_the_cluster_too():
    settings = {**CONFIG.daskhub, "catalog_registry_url": "https://data.my-site.edu/HelioDataRegistry.json"}
    env = daskhub.hub_values(settings, admins=[], wiring=WIRING)["singleuser"]["extraEnv"]
    assert env["ROOT_CATALOG_REGISTRY_URL"] == "https://data.my-site.edu/HelioDataRegistry.json"
    assert "ROOT_CATALOG_REGISTRY_URL" not in VALUES["singleuser"]["extraEnv"]   # default: the client's own
