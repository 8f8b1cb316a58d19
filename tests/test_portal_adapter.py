"""The sandbox's local API adapter: real HTTP in front of the same handlers, with the Cognito
JWT verified against moto's JWKS before any claim reaches a handler."""
from __future__ import annotations

import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from hc_portal.store import Store
from heliocloud.sandbox.portal import JwtAuthorizer, PortalServer, StateChangePoller
from tests.portal_support import provision_portal

pytestmark = pytest.mark.moto


@pytest.fixture
def served(moto, tmp_path):
    portal = provision_portal(moto.url, tmp_path)
    cognito = portal.sandbox.client("cognito-idp")
    authorizer = JwtAuthorizer(aws_url=moto.url, region="us-east-1",
                               pool_id=portal.sandbox.endpoints["cognito"]["user_pool_id"], client_id=portal.client_id)
    server = PortalServer(api=portal.api, authorizer=authorizer, cognito=cognito, client_id=portal.client_id)
    server.serve_in_background()
    yield portal, server
    server.close()


def sign_in(server, user) -> str:
    response = requests.post(f"{server.url}/auth/signin", json={"email": user["email"], "password": user["password"]}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["id_token"]


def test_verified_token_reaches_the_handler_as_its_sub(served):
    portal, server = served
    token = sign_in(server, portal.users["bob"])
    response = requests.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert response.json()["sub"] == portal.sub("bob") and response.json()["admin"] is False
    alice = sign_in(server, portal.users["alice"])
    assert requests.get(f"{server.url}/api/admin/costs", headers={"Authorization": f"Bearer {alice}"}, timeout=10).status_code == 200
    assert requests.get(f"{server.url}/api/admin/costs", headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code == 403


def test_bad_tokens_are_refused_before_the_handler(served):
    portal, server = served
    token = sign_in(server, portal.users["bob"])
    header, payload, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged_claims = jwt.encode({**claims, "sub": portal.sub("alice")},
                               rsa.generate_private_key(public_exponent=65537, key_size=2048), algorithm="RS256",
                               headers={"kid": jwt.get_unverified_header(token)["kid"]})
    # A token with alice's sub grafted onto bob's signature.
    grafted = ".".join([header, jwt.utils.base64url_encode(
        jwt.api_jws.json.dumps({**claims, "sub": portal.sub("alice")}).encode()).decode(), signature])
    other_client = portal.sandbox.client("cognito-idp").create_user_pool_client(
        UserPoolId=portal.sandbox.endpoints["cognito"]["user_pool_id"], ClientName="other",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])["UserPoolClient"]["ClientId"]
    wrong_audience = portal.sandbox.client("cognito-idp").initiate_auth(
        ClientId=other_client, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": portal.users["bob"]["email"], "PASSWORD": portal.users["bob"]["password"]},
    )["AuthenticationResult"]["IdToken"]
    access_token = portal.sandbox.client("cognito-idp").initiate_auth(
        ClientId=portal.client_id, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": portal.users["bob"]["email"], "PASSWORD": portal.users["bob"]["password"]},
    )["AuthenticationResult"]["AccessToken"]
    for bad in (None, "Bearer", "Basic abc", f"Bearer {forged_claims}", f"Bearer {grafted}", f"Bearer {wrong_audience}",
                f"Bearer {access_token}", f"Bearer {token}x"):
        headers = {"Authorization": bad} if bad else {}
        response = requests.post(f"{server.url}/api/instances", headers=headers, timeout=10,
                                 json={"name": "x", "image": "Amazon Linux 2023", "instance_type": "t3.medium"})
        assert response.status_code == 401, bad
    assert portal.sandbox.client("ec2").describe_instances()["Reservations"] == []


def test_unknown_routes_and_static_files(served):
    portal, server = served
    assert requests.get(f"{server.url}/api/nothing", timeout=10).status_code == 404
    index = requests.get(f"{server.url}/", timeout=10)
    assert index.status_code == 200 and "HelioCloud" in index.text
    assert "default-src 'self'" in index.headers["Content-Security-Policy"]
    assert requests.get(f"{server.url}/app.js", timeout=10).headers["Content-Type"].endswith("javascript")
    assert requests.get(f"{server.url}/../pyproject.toml", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/%2e%2e/pyproject.toml", timeout=10).status_code == 404
    assert requests.get(f"{server.url}/config.json", timeout=10).json()["mode"] == "sandbox"
    assert requests.post(f"{server.url}/api/keys", data=b"x" * 70_000, timeout=10).status_code == 413
    wrong = requests.post(f"{server.url}/auth/signin", json={"email": portal.users["bob"]["email"], "password": "nope"}, timeout=10)
    assert wrong.status_code == 401 and "password" in wrong.json()["message"]


def test_state_change_poller_feeds_the_ledger(served):
    portal, server = served
    token = sign_in(server, portal.users["alice"])
    auth = {"Authorization": f"Bearer {token}"}
    created = requests.post(f"{server.url}/api/instances", headers=auth, timeout=10,
                            json={"name": "vm", "image": "Amazon Linux 2023", "instance_type": "t3.medium"}).json()["instance"]
    poller = StateChangePoller(ec2=portal.sandbox.client("ec2"), store=Store(portal.settings), settings=portal.settings)
    poller.poll_once()
    time.sleep(1.1)
    requests.post(f"{server.url}/api/instances/{created['id']}/stop", headers=auth, timeout=10)
    poller.poll_once()
    poller.poll_once()
    [compute] = [i for i in portal.store.intervals_of(portal.sub("alice")) if i.kind == "compute"]
    assert compute.end > compute.start and compute.rate_per_hour == 0.0416
    costs = requests.get(f"{server.url}/api/costs", headers=auth, timeout=10).json()
    assert costs["rate_per_hour"] > 0  # the volume is still billed while the VM is stopped
