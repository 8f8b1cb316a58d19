"""`heliocloud users` against a real moto server."""
from __future__ import annotations

import pytest

from heliocloud import aws
from heliocloud.cli import main

pytestmark = pytest.mark.moto


def test_add_list_disable_approve(moto, capsys):
    cognito = aws.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName="p", UsernameAttributes=["email"])["UserPool"]["Id"]
    cognito.create_group(UserPoolId=pool, GroupName="admins")
    assert main(["users", "--user-pool-id", pool, "add", "ada@example.edu", "--admin"]) == 0
    assert main(["users", "--user-pool-id", pool, "add", "bo@example.edu"]) == 0
    assert main(["users", "--user-pool-id", pool, "disable", "bo@example.edu"]) == 0
    capsys.readouterr()
    assert main(["users", "--user-pool-id", pool, "list"]) == 0
    listing = capsys.readouterr().out
    assert "ada@example.edu" in listing and "bo@example.edu" in listing
    assert cognito.admin_get_user(UserPoolId=pool, Username="bo@example.edu")["Enabled"] is False
    admins = cognito.list_users_in_group(UserPoolId=pool, GroupName="admins")["Users"]
    assert [email(u) for u in admins] == ["ada@example.edu"]


def email(user: dict) -> str:
    return next(a["Value"] for a in user["Attributes"] if a["Name"] == "email")


def test_approve_confirms_a_self_signed_up_user(moto):
    cognito = aws.client("cognito-idp")
    pool = cognito.create_user_pool(PoolName="p", UsernameAttributes=["email"])["UserPool"]["Id"]
    client = cognito.create_user_pool_client(UserPoolId=pool, ClientName="c")["UserPoolClient"]["ClientId"]
    cognito.sign_up(ClientId=client, Username="new@example.edu", Password="Very-Long-Passw0rd!",
                    UserAttributes=[{"Name": "email", "Value": "new@example.edu"}])
    assert main(["users", "--user-pool-id", pool, "approve", "new@example.edu"]) == 0
    user = cognito.admin_get_user(UserPoolId=pool, Username="new@example.edu")
    assert user["UserStatus"] == "CONFIRMED"
