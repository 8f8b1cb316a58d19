"""Sandbox part: the instance's Cognito user pool in moto, with demo users."""
from __future__ import annotations

from heliocloud.sandbox import Sandbox

# Loopback-only demo accounts; the passwords satisfy the pool's policy.
DEMO_USERS = {
    "alice": {"email": "alice@heliocloud.test", "password": "Alice-Sandbox-2026!", "admin": True},
    "bob": {"email": "bob@heliocloud.test", "password": "Bob-Sandbox-2026!", "admin": False},
}
ADMINS_GROUP = "admins"


def start(sandbox: Sandbox) -> None:
    cognito = sandbox.client("cognito-idp")
    auth = sandbox.config.auth
    pool = cognito.create_user_pool(
        PoolName=f"{sandbox.config.name}-users",
        UsernameAttributes=["email"],
        Policies={"PasswordPolicy": {
            "MinimumLength": auth["password_min_length"], "RequireUppercase": True,
            "RequireLowercase": True, "RequireNumbers": True, "RequireSymbols": True,
        }},
    )["UserPool"]
    pool_id = pool["Id"]
    cognito.create_group(UserPoolId=pool_id, GroupName=ADMINS_GROUP)
    users = {}
    for name, user in DEMO_USERS.items():
        created = cognito.admin_create_user(
            UserPoolId=pool_id,
            Username=user["email"],
            UserAttributes=[{"Name": "email", "Value": user["email"]}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )["User"]
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=user["email"], Password=user["password"], Permanent=True
        )
        if user["admin"]:
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=user["email"], GroupName=ADMINS_GROUP)
        sub = next(a["Value"] for a in created["Attributes"] if a["Name"] == "sub")
        users[name] = {**user, "sub": sub}
    sandbox.endpoints["users"] = users
    sandbox.endpoints["cognito"] = {"user_pool_id": pool_id, "region": sandbox.region}
