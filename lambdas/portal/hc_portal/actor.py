"""EC2 as the caller: the actor role assumed with the session tag ``Owner=<sub>``.

The role's policy only allows start/stop/terminate/delete-key on resources tagged with the
session's Owner and RunInstances/CreateKeyPair only when the request tags them with it, so a
bug in the handler's own ownership check still cannot touch another user's VM.
"""
from __future__ import annotations

import time

import boto3

from hc_portal.settings import Settings

_SESSIONS: dict[tuple[str, str], tuple[float, object]] = {}
SESSION_SECONDS = 900


def ec2_as(owner: str, settings: Settings):
    if not settings.actor_role_arn:
        raise RuntimeError("actor_role_arn is not configured; the portal never acts on EC2 with its own role")
    cached = _SESSIONS.get((settings.actor_role_arn, owner))
    if cached and cached[0] > time.time() + 60:
        return cached[1]
    creds = boto3.client("sts").assume_role(
        RoleArn=settings.actor_role_arn,
        RoleSessionName=f"portal-{owner}"[:64],
        DurationSeconds=SESSION_SECONDS,
        Tags=[{"Key": "Owner", "Value": owner}],
    )["Credentials"]
    client = boto3.client(
        "ec2",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    _SESSIONS[(settings.actor_role_arn, owner)] = (time.time() + SESSION_SECONDS, client)
    return client
