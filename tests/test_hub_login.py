"""Hub sign-in with Cognito: the shipped GenericOAuthenticator settings, read by the real
oauthenticator, turn real ID tokens of a moto user pool into the right hub users.

Proven here, with the settings taken from `heliocloud.daskhub.hub_values()` (not a copy):
- the hub username is the e-mail, members of the Cognito group `admins` are hub admins and
  nobody else is, and hub groups follow the Cognito groups (`cognito:groups` in the ID token);
- with `daskhub.allowed_groups` set, only members of those groups (and admins) may sign in;
  with it empty, every member of the pool may.
"""
from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
from pathlib import Path
from types import SimpleNamespace

import pytest
from oauthenticator.generic import GenericOAuthenticator
from traitlets.config import Config

from heliocloud import daskhub
from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import auth as sandbox_auth

pytestmark = pytest.mark.moto
REPO = Path(__file__).resolve().parents[1]
HUB_URL = "https://hub.heliocloud.test"
COGNITO_URL = "https://helio-heliocloud.auth.us-east-1.amazoncognito.com"
RESEARCHERS = "researchers"
ALICE = sandbox_auth.DEMO_USERS["alice"]   # in `admins`
BOB = sandbox_auth.DEMO_USERS["bob"]       # in no group
CAROL = {"email": "carol@heliocloud.test", "password": "Carol-Sandbox-2026!"}   # in `researchers`


@pytest.fixture
def pool(moto, tmp_path) -> SimpleNamespace:
    """The sandbox's user pool (alice, bob), carol in a `researchers` group, and the hub's app client."""
    config = load(REPO / "instance.yaml")
    sandbox = Sandbox(config, state_dir=tmp_path, aws_url=moto.url)
    sandbox_auth.start(sandbox)
    cognito = sandbox.client("cognito-idp")
    pool_id = sandbox.endpoints["cognito"]["user_pool_id"]
    cognito.create_group(UserPoolId=pool_id, GroupName=RESEARCHERS)
    cognito.admin_create_user(
        UserPoolId=pool_id, Username=CAROL["email"], MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": CAROL["email"]}, {"Name": "email_verified", "Value": "true"}])
    cognito.admin_set_user_password(UserPoolId=pool_id, Username=CAROL["email"], Password=CAROL["password"],
                                    Permanent=True)
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=CAROL["email"], GroupName=RESEARCHERS)
    client = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="daskhub", GenerateSecret=True,
        AllowedOAuthFlows=["code"], AllowedOAuthScopes=["openid", "email", "profile"],
        CallbackURLs=[f"{HUB_URL}/hub/oauth_callback"], SupportedIdentityProviders=["COGNITO"],
        # The stack's client leaves ReadAttributes unset, which in Cognito means every attribute
        # is readable (and so in the ID token); moto puts only listed attributes there.
        ReadAttributes=["email", "email_verified"],
        # moto has no hosted sign-in page, so the test signs in with the admin password flow;
        # it issues the same three tokens as the authorization-code flow the hub uses.
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    return SimpleNamespace(config=config, cognito=cognito, pool_id=pool_id, client=client)


def secret_hash(client: dict, username: str) -> str:
    """Cognito's SECRET_HASH, required by an app client that has a secret."""
    digest = hmac.new(client["ClientSecret"].encode(), (username + client["ClientId"]).encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def token_response(pool: SimpleNamespace, user: dict) -> dict:
    """What Cognito's /oauth2/token answers the hub after `user` signs in."""
    tokens = pool.cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id, ClientId=pool.client["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": user["email"], "PASSWORD": user["password"],
                        "SECRET_HASH": secret_hash(pool.client, user["email"])},
    )["AuthenticationResult"]
    return {"access_token": tokens["AccessToken"], "id_token": tokens["IdToken"],
            "refresh_token": tokens["RefreshToken"], "token_type": tokens["TokenType"],
            "expires_in": tokens["ExpiresIn"]}


def daskhub_settings(pool: SimpleNamespace, allowed_groups: list[str]) -> dict:
    settings = copy.deepcopy(pool.config.daskhub)
    settings["allowed_groups"] = allowed_groups
    return settings


def hub_authenticator(pool: SimpleNamespace, settings: dict) -> GenericOAuthenticator:
    """The hub's authenticator, configured by the chart values the stack deploys."""
    wiring = daskhub.HubWiring(hub_url=HUB_URL, cognito_url=COGNITO_URL, client_id=pool.client["ClientId"],
                               scratch_bucket="helio-scratch", region="us-east-1")
    admins = pool.config.auth["admins"] + settings["admin_users"]   # as stacks/daskhub.py passes them
    hub_config = daskhub.hub_values(settings, admins=admins, wiring=wiring)["hub"]["config"]
    # Every section of hub.config that configures this class or one it inherits from.
    authenticator_classes = {cls.__name__ for cls in GenericOAuthenticator.mro()}
    cfg = Config({name: section for name, section in hub_config.items() if name in authenticator_classes})
    # In the cluster the hub's extraConfig reads the secret from a file its init container writes.
    cfg.GenericOAuthenticator.client_secret = pool.client["ClientSecret"]
    return GenericOAuthenticator(config=cfg)


def sign_in(authenticator: GenericOAuthenticator, token_info: dict) -> dict | None:
    """The hub's user model for this token response, or None if sign-in is refused: what
    `authenticate` does after exchanging the code, then the allow check JupyterHub makes."""
    async def run() -> dict | None:
        auth_model = await authenticator._token_to_auth_model(token_info)
        allowed = await authenticator.check_allowed(auth_model["name"], auth_model)
        return auth_model if allowed else None

    return asyncio.run(run())


def test_cognito_admins_group_makes_hub_admins_and_groups_follow_cognito(pool):
    authenticator = hub_authenticator(pool, daskhub_settings(pool, []))

    alice = sign_in(authenticator, token_response(pool, ALICE))
    bob = sign_in(authenticator, token_response(pool, BOB))
    carol = sign_in(authenticator, token_response(pool, CAROL))

    assert (alice["name"], alice["admin"], alice["groups"]) == (ALICE["email"], True, ["admins"])
    assert (bob["name"], bob["admin"], bob["groups"]) == (BOB["email"], False, [])
    assert (carol["name"], carol["admin"], carol["groups"]) == (CAROL["email"], False, [RESEARCHERS])


def test_allowed_groups_admit_only_their_members_and_admins(pool):
    authenticator = hub_authenticator(pool, daskhub_settings(pool, [RESEARCHERS]))
    assert not authenticator.allow_all and authenticator.allowed_groups == {RESEARCHERS}

    assert sign_in(authenticator, token_response(pool, CAROL))["name"] == CAROL["email"]
    assert sign_in(authenticator, token_response(pool, BOB)) is None
    assert sign_in(authenticator, token_response(pool, ALICE))["admin"] is True


def test_without_allowed_groups_every_pool_member_may_sign_in(pool):
    authenticator = hub_authenticator(pool, daskhub_settings(pool, []))
    assert authenticator.allow_all

    for user in (ALICE, BOB, CAROL):
        assert sign_in(authenticator, token_response(pool, user))["name"] == user["email"]
