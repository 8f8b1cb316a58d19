"""Every bad input the portal API can be sent: a clear 400 naming the field, nothing created.

One portal is provisioned for the module (these requests change nothing)."""
from __future__ import annotations

import pytest

from tests.portal_support import provision_portal

pytestmark = pytest.mark.moto

LAUNCH = {"name": "analysis", "image": "Amazon Linux 2023", "instance_type": "t3.medium", "volume_gb": 30}


@pytest.fixture(scope="module")
def portal(moto_server, tmp_path_factory):
    moto_server.reset()
    return provision_portal(moto_server.url, tmp_path_factory.mktemp("portal"))


@pytest.mark.parametrize("body, field", [
    ({**LAUNCH, "name": ""}, "name"),
    ({**LAUNCH, "name": "has space"}, "name"),
    ({k: v for k, v in LAUNCH.items() if k != "name"}, "name"),
    ({**LAUNCH, "image": "Windows 95"}, "image"),
    ({**LAUNCH, "image": 7}, "image"),
    ({**LAUNCH, "instance_type": "p5.48xlarge"}, "instance_type"),
    ({**LAUNCH, "volume_gb": 5}, "volume_gb"),
    ({**LAUNCH, "volume_gb": 100000}, "volume_gb"),
    ({**LAUNCH, "volume_gb": "30"}, "volume_gb"),
    ({**LAUNCH, "volume_gb": True}, "volume_gb"),
    ({**LAUNCH, "key_name": "no such key"}, "key_name"),
    ({**LAUNCH, "key_name": "missing"}, "key_name"),
    ({**LAUNCH, "owner": "someone-else"}, "owner"),
    ({**LAUNCH, "subnet_id": "subnet-1"}, "subnet_id"),
])
def test_launch_rejects_bad_input_naming_the_field(portal, body, field):
    status, error, _ = portal.call("alice", "POST", "/api/instances", body)
    assert status == 400 and error["field"] == field and error["message"].startswith(f"{field}:")
    assert portal.call("alice", "GET", "/api/instances")[1]["instances"] == []


@pytest.mark.parametrize("raw, field", [("{not json", "body"), ("[1, 2]", "body"), ('"text"', "body")])
def test_malformed_bodies(portal, raw, field):
    for path in ("/api/instances", "/api/keys"):
        status, error, _ = portal.call("alice", "POST", path, raw)
        assert status == 400 and error["field"] == field


@pytest.mark.parametrize("body, field", [({}, "name"), ({"name": "a/b"}, "name"), ({"name": "x" * 80}, "name"),
                                         ({"name": "ok", "public_key": "ssh-rsa"}, "public_key")])
def test_key_create_rejects_bad_input(portal, body, field):
    status, error, _ = portal.call("alice", "POST", "/api/keys", body)
    assert status == 400 and error["field"] == field


@pytest.mark.parametrize("body, field", [({}, "monthly_usd"), ({"monthly_usd": -1}, "monthly_usd"),
                                         ({"monthly_usd": "10"}, "monthly_usd"), ({"monthly_usd": 1, "x": 1}, "x")])
def test_admin_budget_rejects_bad_input(portal, body, field):
    status, error, _ = portal.call("alice", "PUT", f"/api/admin/budgets/{portal.sub('bob')}", body)
    assert status == 400 and error["field"] == field


def test_bad_instance_id_and_unknown_route(portal):
    status, error, _ = portal.call("alice", "POST", "/api/instances/not-an-id/stop")
    assert status == 400 and error["field"] == "id"
    assert portal.call("alice", "POST", "/api/instances/i-0123456789abcdef0/stop")[0] == 404


def test_no_verified_sub_is_refused(portal):
    status, _, _ = portal.call(None, "GET", "/api/me", claims={})
    assert status == 401



def test_nothing_was_created(portal):
    ec2 = portal.sandbox.client("ec2")
    assert ec2.describe_instances()["Reservations"] == []
    assert portal.store.instances.scan()["Items"] == []
