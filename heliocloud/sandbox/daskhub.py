"""Sandbox part: the Daskhub on loopback, wired as in the cluster.

* The hub is a real JupyterHub (``LocalHub``) configured from ``heliocloud.daskhub.hub_values``,
  the function that makes the chart values the stack deploys, with the sandbox's resources in
  ``HubWiring``: the hosted sign-in (``HostedSignIn``, Cognito's hosted UI on loopback) as the
  Cognito domain, an app client of the sandbox pool made like the stack's (code flow, a secret),
  and a scratch bucket in moto. Sign-in is GenericOAuthenticator's own flow; members of the pool's
  ``admins`` group are hub admins.
* The Dask Gateway is the hub's ``dask-gateway`` service behind its proxy at
  /services/dask-gateway, with the chart's JupyterHubAuthenticator: notebooks call ``Gateway()``
  with no arguments, from the DASK_GATEWAY__* environment, with their server's hub token.
* Notebooks, Dask schedulers and workers run the HelioCloud environment (``.venv-researcher``)
  and see the sandbox's S3 as AWS (AWS_ENDPOINT_URL and credentials in their environment).
"""
from __future__ import annotations

import shutil

from heliocloud import daskhub
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox.gateway import HubAuth, LocalGateway
from heliocloud.sandbox.hub import RESEARCHER_ENV, LocalHub
from heliocloud.sandbox.moto import free_port
from heliocloud.sandbox.signin import SCOPES, HostedSignIn

EXAMPLES = daskhub.REPO / "docs" / "examples"
# Scopes of the tokens endpoints.json hands the demo users for scripts outside the hub.
SCRIPT_TOKEN_SCOPES = ["access:services!service=" + daskhub.GATEWAY_SERVICE, "self"]
# `heliocloud sandbox --quick-cull`: seconds instead of the configured hour, to watch culling.
QUICK_CULL = {"timeout": 60, "every": 15}


def hub_client(cognito, pool_id: str, hub_url: str) -> dict:
    """The hub's app client, made as the stack makes it (code flow, a secret, the callback)."""
    return cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="daskhub", GenerateSecret=True,
        AllowedOAuthFlows=["code"], AllowedOAuthScopes=SCOPES, AllowedOAuthFlowsUserPoolClient=True,
        CallbackURLs=[f"{hub_url}/hub/oauth_callback"], LogoutURLs=[hub_url], SupportedIdentityProviders=["COGNITO"],
        # Unset in the stack, which in Cognito means every attribute is in the ID token; moto puts
        # only the listed ones there.
        ReadAttributes=["email", "email_verified"],
        # The hosted sign-in gets the pool's tokens with the admin password flow.
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]


def start(sandbox: Sandbox) -> LocalHub:
    config = sandbox.config
    cognito = sandbox.client("cognito-idp")
    pool_id = sandbox.endpoints["cognito"]["user_pool_id"]
    signin = HostedSignIn(cognito, pool_id).start()
    sandbox.on_stop(signin.stop)

    hub_port = free_port()
    hub_url = f"http://127.0.0.1:{hub_port}"
    client = hub_client(cognito, pool_id, hub_url)
    scratch = f"{config.name}-scratch"
    sandbox.client("s3").create_bucket(Bucket=scratch)
    wiring = daskhub.HubWiring(hub_url=hub_url, cognito_url=signin.url, client_id=client["ClientId"],
                               scratch_bucket=scratch, region=sandbox.region)
    settings = config.daskhub
    values = daskhub.hub_values(settings, admins=config.auth["admins"] + settings["admin_users"], wiring=wiring)

    gateway_service = daskhub.GATEWAY_SERVICE
    hub = LocalHub(values, workdir=sandbox.state_dir / "hub", authenticator="generic-oauth",
                   authenticator_config={}, authenticator_secrets={"GenericOAuthenticator": {
                       "client_secret": client["ClientSecret"]}},
                   cull=sandbox.options.get("cull"), port=hub_port)
    gateway_log = open(sandbox.state_dir / "gateway.log", "ab")
    sandbox.on_stop(gateway_log.close)
    gateway = LocalGateway(
        settings, workdir=sandbox.state_dir / "gateway", log=gateway_log,
        environment=sandbox.env, python_env=RESEARCHER_ENV if RESEARCHER_ENV.exists() else None,
        hub=HubAuth(api_url=hub.api_url, service_name=gateway_service, api_token=hub.service_tokens[gateway_service]),
        prefix=f"/services/{gateway_service}",
    )
    hub.service_urls[gateway_service] = gateway.service_url
    hub.notebook_env.update({
        **sandbox.env,
        # The chart's in-cluster addresses (proxy-public, traefik-dask-gateway) become loopback ones.
        "DASK_GATEWAY__ADDRESS": f"{hub_url}/services/{gateway_service}",
        "DASK_GATEWAY__PROXY_ADDRESS": gateway.proxy_address,
        **({"ROOT_CATALOG_REGISTRY_URL": sandbox.endpoints["catalog_registry_url"]}
           if sandbox.endpoints.get("catalog_registry_url") else {}),
    })
    hub.start()
    sandbox.on_stop(hub.stop)   # cleanups run in reverse: the hub stops before the gateway
    gateway.start()
    sandbox.on_stop(gateway.stop)

    users = sandbox.endpoints.get("users", {})
    for user in users.values():
        # The example notebooks wait in each demo user's home, as a fresh start of the tutorials.
        home = hub.workdir / "homes" / user["email"] / "examples"
        home.mkdir(parents=True, exist_ok=True)
        for notebook in EXAMPLES.glob("*.ipynb"):
            shutil.copyfile(notebook, home / notebook.name)
        # Hub users are e-mails (username_claim); made now so scripts get tokens before a sign-in.
        hub.api("POST", f"/users/{user['email']}", json={})
        user["hub_token"] = hub.new_token(user["email"], scopes=SCRIPT_TOKEN_SCOPES, note="sandbox scripts")
    sandbox.endpoints["hub"] = {"url": hub_url, "api_url": hub.api_url, "users": sorted(u["email"] for u in users.values()),
                                "api_token": hub.admin_token, "signin": signin.url}
    settings_out = gateway.client_settings()
    sandbox.endpoints["gateway"] = f"{hub_url}/services/{gateway_service}"
    sandbox.endpoints["dask_gateway"] = {
        **settings_out, "address": sandbox.endpoints["gateway"],
        "note": "in a hub notebook: Gateway(); elsewhere: Gateway(address, proxy_address=proxy_address, "
                "auth=JupyterHubAuth(api_token=users.<name>.hub_token))",
    }
    return hub
