"""The hub/gateway wiring of the shipped chart values, proven with a real JupyterHub and a real
dask-gateway-server.

The hub runs with the hub release's values (its `dask-gateway` service, the `user` role that
grants `access:services!service=dask-gateway`); the gateway runs the chart's
JupyterHubAuthenticator as that service, behind the hub's proxy at the chart's prefix, with the
shipped gateway_config.py. Clients reach it as notebooks do (through the hub at
/services/dask-gateway). What it proves:

* a user's token, holding the gateway's access scope through the `user` role, creates and lists
  clusters;
* a valid hub token without that scope (a narrowed user token, another hub service's token) is
  refused by the gateway;
* another user sees none of those clusters and can neither connect to nor stop them;
* a hub admin gets no wider view: dask-gateway-server 2026.3 keeps the hub's admin flag on its
  user record but only ever compares user names (``User.has_permissions``, ``list_clusters``).

Not run here: a notebook server's own token (Spawner.server_token_scopes) — spawning one needs
jupyter_server, which the test environment lacks; the values test only checks the scope is set.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil
import pytest
from dask_gateway import Gateway
from dask_gateway.auth import JupyterHubAuth

from gateway_deadline import deadline  # noqa: F401 (autouse fixture)
from heliocloud import daskhub
from heliocloud.config import load
from heliocloud.sandbox.gateway import HubAuth, LocalGateway
from heliocloud.sandbox.hub import ADMIN_SERVICE, LocalHub

pytestmark = pytest.mark.hub
REPO = Path(__file__).resolve().parents[1]
# Addresses the hub values need but a local hub never contacts (Cognito is not used here).
WIRING = daskhub.HubWiring(hub_url="http://127.0.0.1", cognito_url="https://example.auth.us-east-1.amazoncognito.com",
                           client_id="local", scratch_bucket="scratch", region="us-east-1")
ADMIN = "carol"   # a hub admin, named the way instance.yaml names admins


@pytest.fixture(scope="module")
def daskhub_config() -> dict:
    return load(REPO / "instance.yaml").daskhub


@pytest.fixture(scope="module")
def hub_values(daskhub_config) -> dict:
    return daskhub.hub_values(daskhub_config, admins=[ADMIN], wiring=WIRING)


@pytest.fixture(scope="module")
def gateway_auth_values(daskhub_config) -> dict:
    """gateway.auth.jupyterhub and gateway.prefix of the gateway release."""
    gateway = daskhub.gateway_values(daskhub_config, region=WIRING.region)["gateway"]
    return {**gateway["auth"]["jupyterhub"], "prefix": gateway["prefix"]}


@dataclass
class Servers:
    hub: LocalHub
    gateway: LocalGateway
    address: str   # the gateway as notebooks reach it: through the hub's proxy


@pytest.fixture(scope="module")
def servers(daskhub_config, hub_values, gateway_auth_values, tmp_path_factory):
    service = gateway_auth_values["jupyterhubServiceName"]
    workdir = tmp_path_factory.mktemp("hub-gateway")
    hub = LocalHub(hub_values, workdir=workdir / "hub")
    gateway = LocalGateway(
        daskhub_config, workdir=workdir / "gateway", prefix=gateway_auth_values["prefix"],
        hub=HubAuth(api_url=hub.api_url, service_name=service, api_token=hub.service_tokens[service]),
    )
    hub.service_urls[service] = gateway.service_url
    # The gateway first: the hub then finds its service up when it adds the route to it.
    gateway.start()
    try:
        hub.start()
        yield Servers(hub=hub, gateway=gateway, address=hub.url + gateway_auth_values["prefix"])
    finally:
        gateway.stop()
        hub.stop()


@pytest.fixture(scope="module")
def tokens(servers) -> dict[str, str]:
    """Hub tokens: with the user's own scopes (the default), and narrowed ones."""
    hub = servers.hub
    for name in ("alice", "bob"):
        hub.create_user(name)
    return {
        "alice": hub.new_token("alice"),
        "bob": hub.new_token("bob"),
        "carol (hub admin)": hub.new_token(ADMIN),  # the hub created her at start, from the config
        "alice, names only": hub.new_token("alice", scopes=["read:users:name!user"]),
        "another hub service": hub.admin_token,
    }


def gateway_as(servers: Servers, token: str) -> Gateway:
    return Gateway(servers.address, proxy_address=servers.gateway.proxy_address,
                   auth=JupyterHubAuth(api_token=token))


@pytest.fixture(scope="module")
def alice_cluster(servers, tokens):
    """One running cluster of alice's, for the whole module."""
    with gateway_as(servers, tokens["alice"]) as gw:
        cluster = gw.new_cluster()
        yield cluster.name
        cluster.shutdown()


def test_the_release_values_name_one_service(hub_values, gateway_auth_values):
    """The names the two releases share agree (the local setup below relies on them too)."""
    service = gateway_auth_values["jupyterhubServiceName"]
    scope = f"access:services!service={service}"
    assert service in hub_values["hub"]["services"]
    assert gateway_auth_values["apiTokenFromSecretKey"] == f"hub.services.{service}.apiToken"
    assert gateway_auth_values["prefix"] == f"/services/{service}"  # where the hub routes its services
    assert scope in hub_values["hub"]["loadRoles"]["user"]["scopes"]
    assert scope in hub_values["hub"]["config"]["Spawner"]["server_token_scopes"]


def test_a_users_token_creates_and_lists_her_cluster(servers, tokens, alice_cluster):
    with gateway_as(servers, tokens["alice"]) as gw:
        (report,) = gw.list_clusters()
        assert (report.name, report.status.name) == (alice_cluster, "RUNNING")
        with gw.connect(alice_cluster) as cluster:
            assert cluster.name == alice_cluster


@pytest.mark.parametrize("holder", ["alice, names only", "another hub service"])
def test_a_hub_token_without_the_gateway_scope_is_refused(servers, tokens, holder, alice_cluster):
    """The gateway answers 401, as for no token at all: the hub knows the token, the scope is missing."""
    identity = servers.hub.api("GET", "/user", token=tokens[holder])
    assert identity.status_code == 200
    assert identity.json()["name"] == {"alice, names only": "alice", "another hub service": ADMIN_SERVICE}[holder]
    assert "access:services!service=dask-gateway" not in identity.json()["scopes"]
    with gateway_as(servers, tokens[holder]) as gw:
        for attempt in (gw.list_clusters, gw.submit):
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                attempt()
            assert refused.value.status == 401


@pytest.mark.parametrize("other", ["bob", "carol (hub admin)"])
def test_other_users_cannot_see_connect_to_or_stop_a_cluster(servers, tokens, other, alice_cluster):
    if other.startswith("carol"):
        assert servers.hub.api("GET", "/user", token=tokens[other]).json()["admin"] is True
    with gateway_as(servers, tokens[other]) as gw:
        assert gw.list_clusters() == []
        for attempt in (gw.connect, gw.stop_cluster):
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                attempt(alice_cluster)
            assert refused.value.status == 403
    with gateway_as(servers, tokens["alice"]) as gw:
        assert [(r.name, r.status.name) for r in gw.list_clusters()] == [(alice_cluster, "RUNNING")]


def test_stopping_the_hub_leaves_no_process(hub_values, tmp_path):
    hub = LocalHub(hub_values, workdir=tmp_path).start()
    started = psutil.Process(hub.process.pid).children(recursive=True)
    assert any("configurable-http-proxy" in " ".join(p.cmdline()) for p in started)
    began = time.monotonic()
    hub.stop()
    _, alive = psutil.wait_procs(started, timeout=15)
    assert alive == [] and hub.process.poll() is not None
    assert time.monotonic() - began < 15
    written = hub.log_path.read_text() + (tmp_path / "jupyterhub_config.py").read_text()
    assert not [token for token in hub.service_tokens.values() if token in written]
