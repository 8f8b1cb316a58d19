"""Helpers for the portal tests: a provisioned portal on the test moto server, and events."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from hc_portal import api as portal_api
from hc_portal import settings as portal_settings
from hc_portal.store import Store
from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import auth as auth_part
from heliocloud.sandbox import portal as portal_part
from heliocloud.sandbox.portal import api_event

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Portal:
    sandbox: Sandbox
    settings: portal_settings.Settings
    api: portal_api.Api
    store: Store
    users: dict
    client_id: str

    def call(self, user: str | None, method: str, path: str, body=None, *, claims: dict | None = None) -> tuple[int, dict, dict]:
        """One request through the same route table and event shape API Gateway uses."""
        matched = portal_api.match_route(method, path)
        assert matched, f"no route for {method} {path}"
        route_key, params = matched
        if claims is None:
            who = self.users[user]
            claims = {"sub": who["sub"], "email": who["email"], "token_use": "id"}
            if who["admin"]:
                claims["cognito:groups"] = "[admins]"
        raw = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
        event = api_event(method=method, path=path, query="", headers={}, body=raw.encode() if isinstance(raw, str) else raw,
                          claims=claims, route_key=route_key, path_parameters=params)
        result = portal_api.dispatch(self.api, event)
        return result["statusCode"], json.loads(result["body"]), result["headers"]

    def sub(self, user: str) -> str:
        return self.users[user]["sub"]


def provision_portal(moto_url: str, tmp_path: Path, *, config_path: Path | None = None) -> Portal:
    config = load(config_path or REPO / "instance.yaml")
    sandbox = Sandbox(config=config, state_dir=tmp_path, aws_url=moto_url)
    auth_part.start(sandbox)
    wired = portal_part.provision(sandbox)
    os.environ.update(wired["env"])
    settings = portal_settings.current()
    api = portal_api.Api(settings, ec2=sandbox.client("ec2"), ssm=sandbox.client("ssm"))
    return Portal(sandbox=sandbox, settings=settings, api=api, store=Store(settings),
                  users=sandbox.endpoints["users"], client_id=wired["client_id"])


def state_event(instance_id: str, state: str, when: str) -> dict:
    return {"version": "0", "source": "aws.ec2", "detail-type": "EC2 Instance State-change Notification",
            "time": when, "detail": {"instance-id": instance_id, "state": state}}
