"""The sandbox's Daskhub as a researcher meets it: `heliocloud sandbox` started as a person starts
it, alice signs in through the hosted sign-in, picks a server size in the spawn form, and runs each
example notebook of docs/examples/ unchanged in a kernel of her server; bob can reach neither her
server nor her Dask clusters; Ctrl-C leaves nothing behind.

Culling runs in a hub of its own (the same LocalHub, with seconds instead of an hour), so that
waiting for it does not race the notebooks."""
from __future__ import annotations

import json
import math
import os
import signal
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp
import psutil
import pytest
import requests
from dask_gateway import Gateway, JupyterHubAuth
from sandbox_support import running_sandbox

from heliocloud import daskhub
from heliocloud.config import load
from heliocloud.sandbox.hub import LocalHub
from heliocloud.sandbox.researcher import (
    Kernel,
    notebook_cells,
    profiles_offered,
    run_notebook,
    sign_in,
    spawn,
)

pytestmark = pytest.mark.hub
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.ipynb"))
CONFIG = load(REPO / "instance.yaml")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    state = tmp_path_factory.mktemp("hub-sandbox")
    began = time.monotonic()
    with running_sandbox(state, timeout=150) as (proc, endpoints):
        print(f"sandbox up in {time.monotonic() - began:.1f} s")
        yield proc, state, endpoints


@pytest.fixture(scope="module")
def alice(sandbox):
    """alice signed in, with her server on the `medium` profile and a token for its kernels."""
    _, _, endpoints = sandbox
    hub, user = endpoints["hub"], endpoints["users"]["alice"]
    session = sign_in(hub["url"], user["email"], user["password"])
    offered = profiles_offered(session, hub["url"])
    seconds = spawn(session, hub["url"], user["email"], "medium")
    print(f"alice's server ready in {seconds:.1f} s")
    token = mint_token(hub, user["email"])
    return {"session": session, "offered": offered, "token": token, "name": user["email"],
            "server": f"{hub['url']}/user/{user['email']}"}


def mint_token(hub: dict, user: str, **body) -> str:
    response = requests.post(f"{hub['api_url']}/users/{quote(user)}/tokens", json={"note": "test", **body},
                             headers={"Authorization": f"token {hub['api_token']}"}, timeout=10)
    response.raise_for_status()
    return response.json()["token"]


def test_endpoints_name_the_hub_first_with_an_admin_token(sandbox):
    _, _, endpoints = sandbox
    hub = endpoints["hub"]
    assert list(endpoints).index("hub") < list(endpoints).index("portal")
    assert hub["url"].startswith("http://127.0.0.1:")
    assert sorted(hub["users"]) == sorted(u["email"] for u in endpoints["users"].values())
    users = requests.get(f"{hub['api_url']}/users", headers={"Authorization": f"token {hub['api_token']}"}, timeout=10)
    assert users.status_code == 200


def test_alice_signs_in_as_an_admin_and_is_offered_the_configured_profiles(sandbox, alice):
    _, _, endpoints = sandbox
    hub = endpoints["hub"]
    assert alice["offered"] == [p["name"] for p in CONFIG.daskhub["profiles"]]
    me = requests.get(f"{hub['api_url']}/users/{quote(alice['name'])}",
                      headers={"Authorization": f"token {hub['api_token']}"}, timeout=10).json()
    assert me["admin"] is True and me["groups"] == ["admins"]   # the Cognito group, as in the cluster
    bob = endpoints["users"]["bob"]
    sign_in(hub["url"], bob["email"], bob["password"])
    them = requests.get(f"{hub['api_url']}/users/{quote(bob['email'])}",
                        headers={"Authorization": f"token {hub['api_token']}"}, timeout=10).json()
    assert them["admin"] is False and them["groups"] == []


def test_a_wrong_password_is_refused_at_the_sign_in_page(sandbox):
    _, _, endpoints = sandbox
    with pytest.raises(PermissionError):
        sign_in(endpoints["hub"]["url"], endpoints["users"]["alice"]["email"], "not-her-password")


def test_the_server_runs_the_chosen_profile_with_its_limits(alice):
    medium = next(p for p in CONFIG.daskhub["profiles"] if p["name"] == "medium")
    with Kernel(alice["server"], alice["token"]) as kernel:
        facts = kernel.value("{'profile': __import__('os').environ['HELIOCLOUD_PROFILE'], "
                             "'cpu': __import__('os').environ['CPU_LIMIT'], "
                             "'cores': len(__import__('os').sched_getaffinity(0)), "
                             "'rlimit_as': __import__('resource').getrlimit(__import__('resource').RLIMIT_AS)[0]}")
    assert facts["profile"] == "medium" and float(facts["cpu"]) == medium["cpu"]
    assert facts["cores"] == min(len(os.sched_getaffinity(0)), math.ceil(medium["cpu"]))
    assert facts["rlimit_as"] == medium["memory_gib"] * 1024 ** 3


@pytest.mark.parametrize("notebook", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_each_example_notebook_runs_unchanged_in_alices_server(sandbox, alice, notebook):
    _, state, _ = sandbox
    assert notebook_cells(notebook), f"{notebook.name} has no code"
    began = time.monotonic()
    with Kernel(alice["server"], alice["token"]) as kernel:
        first = time.monotonic()
        kernel.run("pass")
        print(f"{notebook.stem}: kernel and first cell {time.monotonic() - first:.1f} s")
        run_notebook(kernel, notebook)
        if notebook.stem == "sdo_aia_burst":
            results = kernel.value("results")
    print(f"{notebook.stem}: {time.monotonic() - began:.1f} s")
    if notebook.stem == "sdo_aia_burst":
        seeded = json.loads((state / "samples.json").read_text())["aia_0094"]
        assert set(results) == set(seeded)
        assert all(abs(results[key] - seeded[key]) < 1e-6 for key in seeded)


def test_bob_cannot_reach_alices_server_or_her_clusters(sandbox, alice):
    _, _, endpoints = sandbox
    hub, gateway = endpoints["hub"], endpoints["dask_gateway"]
    bob = endpoints["users"]["bob"]
    # Through the browser: bob's hub session gets no access to her server.
    bob_session = sign_in(hub["url"], bob["email"], bob["password"])
    page = bob_session.get(f"{alice['server']}/api/status", timeout=30, allow_redirects=True)
    assert page.status_code in (403, 404) or "/hub/" in page.url and alice["server"] not in page.url
    # With a token: a token of bob's own is refused by her server.
    bob_token = mint_token(hub, bob["email"])
    assert requests.get(f"{alice['server']}/api/status", headers={"Authorization": f"token {bob_token}"},
                        timeout=30).status_code == 403
    # Dask Gateway: alice's cluster is invisible to bob and refuses him.
    def gateway_for(token):
        return Gateway(gateway["address"], proxy_address=gateway["proxy_address"], auth=JupyterHubAuth(api_token=token))

    with gateway_for(alice["token"]) as gw_alice, gateway_for(bob_token) as gw_bob:
        options = gw_alice.cluster_options()
        options.worker_cores, options.worker_memory = 1, 1
        cluster = gw_alice.new_cluster(options)
        try:
            assert cluster.name in {c.name for c in gw_alice.list_clusters()}
            assert gw_bob.list_clusters() == []
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                gw_bob.connect(cluster.name)
            assert refused.value.status == 403
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                gw_bob.stop_cluster(cluster.name)
            assert refused.value.status == 403
            assert cluster.name in {c.name for c in gw_alice.list_clusters()}
        finally:
            cluster.shutdown()


def test_ctrl_c_stops_hub_servers_kernels_and_clusters(sandbox, alice):
    proc, state, endpoints = sandbox
    before = [p for p in psutil.process_iter(["cmdline"]) if str(state) in " ".join(p.info["cmdline"] or [])]
    assert before, "the sandbox's processes should mention its state folder"
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=90) == 0
    time.sleep(1)
    left = [p for p in before if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, [" ".join(p.cmdline())[:120] for p in left]
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoints["hub"]["url"], timeout=2)


# ---------------------------------------------------------------- culling, in a hub of its own
def test_an_idle_server_is_culled(tmp_path):
    wiring = daskhub.HubWiring(hub_url="http://127.0.0.1", cognito_url="http://127.0.0.1", client_id="local",
                               scratch_bucket="scratch", region="us-east-1")
    values = daskhub.hub_values(CONFIG.daskhub, admins=[], wiring=wiring)
    assert values["cull"]["timeout"] == CONFIG.daskhub["culling"]["idle_minutes"] * 60   # what the cluster gets
    with LocalHub(values, workdir=tmp_path, cull={"timeout": 10, "every": 3}) as hub:
        hub.create_user("bob")
        assert hub.api("POST", "/users/bob/server", json={"profile": "small"}).status_code in (201, 202)
        deadline = time.monotonic() + 90
        while not hub.api("GET", "/users/bob").json()["servers"] and time.monotonic() < deadline:
            time.sleep(0.5)
        ready = time.monotonic()
        while hub.api("GET", "/users/bob").json()["servers"]:
            assert time.monotonic() < deadline + 60, "bob's idle server was not culled"
            time.sleep(1)
        print(f"idle server culled {time.monotonic() - ready:.1f} s after it was ready")
        # The culler service stopped it (not a crash): its request is in the hub's log.
        assert "DELETE /hub/api/users/bob/server (jupyterhub-idle-culler@" in hub.log_path.read_text()
