"""The portal API's handlers against a running moto server: every route, every bad input,
isolation between users, budgets, quota, the ledger, the enforcer and the reconcile job."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests

from hc_portal import enforcer, events, ledger, reconcile
from tests.portal_support import provision_portal, state_event

pytestmark = pytest.mark.moto

LAUNCH = {"name": "analysis", "image": "Amazon Linux 2023", "instance_type": "t3.medium", "volume_gb": 30}


@pytest.fixture
def portal(moto, tmp_path):
    return provision_portal(moto.url, tmp_path)


def launch(portal, user="alice", **overrides):
    status, body, _ = portal.call(user, "POST", "/api/instances", {**LAUNCH, **overrides})
    assert status == 201, body
    return body["instance"]


def ec2_state(portal, instance_id):
    ec2 = portal.sandbox.client("ec2")
    return ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]["Name"]


# ------------------------------------------------------------------ routes

def test_me_and_catalog(portal):
    status, me, headers = portal.call("alice", "GET", "/api/me")
    assert status == 200 and me["sub"] == portal.sub("alice") and me["admin"] is True
    assert me["budget"]["state"] == "ok" and headers["Cache-Control"] == "no-store"
    status, me_bob, _ = portal.call("bob", "GET", "/api/me")
    assert me_bob["admin"] is False
    status, catalog, _ = portal.call("bob", "GET", "/api/catalog")
    assert status == 200
    assert {i["name"] for i in catalog["images"]} >= {"Amazon Linux 2023", "Ubuntu 24.04 LTS"}
    gpu = [t for t in catalog["instance_types"] if t["gpus"]]
    assert gpu and all(t["price_per_hour"] > 0 for t in catalog["instance_types"])
    assert {"min", "max", "default"} <= set(catalog["volume_gb"])


def test_launch_tags_everything_with_owner_and_name(portal):
    key_status, key, _ = portal.call("alice", "POST", "/api/keys", {"name": "laptop"})
    assert key_status == 201
    inst = launch(portal, key_name="laptop", image="Ubuntu 24.04 LTS", instance_type="g4dn.xlarge")
    ec2 = portal.sandbox.client("ec2")
    described = ec2.describe_instances(InstanceIds=[inst["id"]])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in described["Tags"]}
    assert tags["Owner"] == portal.sub("alice") and tags["Name"] == "analysis"
    assert described["InstanceType"] == "g4dn.xlarge"
    assert described["KeyName"] == f"hc-{portal.sub('alice')}-laptop"
    volumes = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [inst["id"]]}])["Volumes"]
    assert volumes and all({"Key": "Owner", "Value": portal.sub("alice")} in v["Tags"] for v in volumes)
    assert all(v["Encrypted"] for v in volumes)
    # (moto does not apply network-interface tag specifications; test_portal_units checks the request has them)
    status, listed, _ = portal.call("alice", "GET", "/api/instances")
    [view] = listed["instances"]
    assert view["state"] == "running" and view["os"] == "ubuntu"
    assert view["ssh_command"].startswith("ssh -i ~/.ssh/laptop.pem ubuntu@")
    assert view["session_manager_command"] == f"aws ssm start-session --target {inst['id']} --region us-east-1"


def test_stop_start_terminate_own_instance(portal):
    inst = launch(portal)
    assert portal.call("alice", "POST", f"/api/instances/{inst['id']}/stop")[0] == 202
    assert ec2_state(portal, inst["id"]) in ("stopping", "stopped")
    _, listed, _ = portal.call("alice", "GET", "/api/instances")
    assert listed["instances"][0]["stop_reason"] == "stopped by you"
    assert portal.call("alice", "POST", f"/api/instances/{inst['id']}/start")[0] == 202
    assert ec2_state(portal, inst["id"]) in ("pending", "running")
    assert portal.call("alice", "DELETE", f"/api/instances/{inst['id']}")[0] == 202
    assert ec2_state(portal, inst["id"]) in ("shutting-down", "terminated")
    assert portal.call("alice", "GET", "/api/instances")[1]["instances"] == []


def test_keys_private_key_returned_once_and_never_stored(portal):
    status, created, headers = portal.call("alice", "POST", "/api/keys", {"name": "laptop"})
    assert status == 201 and headers["Cache-Control"] == "no-store"
    assert "PRIVATE KEY" in created["private_key"]
    status, listed, _ = portal.call("alice", "GET", "/api/keys")
    assert [k["name"] for k in listed["keys"]] == ["laptop"]
    assert "private_key" not in str(listed)
    # Nothing in the portal's tables holds key material.
    for table in (portal.store.instances, portal.store.ledger, portal.store.budgets):
        assert "PRIVATE KEY" not in str(table.scan()["Items"])
    assert portal.call("alice", "POST", "/api/keys", {"name": "laptop"})[0] == 409
    assert portal.call("alice", "DELETE", "/api/keys/laptop")[0] == 200
    assert portal.call("alice", "GET", "/api/keys")[1]["keys"] == []
    assert portal.call("alice", "DELETE", "/api/keys/laptop")[0] == 404


def test_costs_and_admin_costs(portal):
    status, costs, _ = portal.call("bob", "GET", "/api/costs")
    assert status == 200 and costs["month_to_date"] == 0 and len(costs["daily"]) == 7
    assert costs["billed"] == {"usd": None, "through": None}
    assert portal.call("bob", "GET", "/api/admin/costs")[0] == 403
    portal.call("bob", "GET", "/api/me")
    status, admin, _ = portal.call("alice", "GET", "/api/admin/costs")
    assert status == 200 and portal.sub("bob") in {u["sub"] for u in admin["users"]}


def test_admin_sets_a_budget_override(portal):
    bob = portal.sub("bob")
    portal.call("bob", "GET", "/api/me")  # users are known to the portal once they signed in
    assert portal.call("bob", "PUT", f"/api/admin/budgets/{bob}", {"monthly_usd": 5})[0] == 403
    status, body, _ = portal.call("alice", "PUT", f"/api/admin/budgets/{bob}", {"monthly_usd": 5})
    assert status == 200 and body["budget"]["monthly_usd"] == 5 and body["budget"]["override"]
    assert portal.call("bob", "GET", "/api/me")[1]["budget"]["monthly_usd"] == 5
    portal.call("alice", "PUT", f"/api/admin/budgets/{bob}", {"monthly_usd": None})
    assert portal.call("bob", "GET", "/api/me")[1]["budget"]["monthly_usd"] == 100


# ------------------------------------------------------------------ isolation

def test_bob_cannot_touch_alices_instance_or_key(portal):
    portal.call("alice", "POST", "/api/keys", {"name": "laptop"})
    inst = launch(portal, key_name="laptop")
    before = ec2_state(portal, inst["id"])
    attempts = [("POST", f"/api/instances/{inst['id']}/stop"), ("POST", f"/api/instances/{inst['id']}/start"),
                ("DELETE", f"/api/instances/{inst['id']}"), ("DELETE", "/api/keys/laptop")]
    for method, path in attempts:
        status, error, _ = portal.call("bob", method, path)
        assert status in (403, 404), (method, path, status)
        assert inst["id"] not in str(error) or "not found" in error["message"]
    assert ec2_state(portal, inst["id"]) == before
    assert [k["name"] for k in portal.call("alice", "GET", "/api/keys")[1]["keys"]] == ["laptop"]
    # Bob sees none of it, and cannot launch with Alice's key.
    assert portal.call("bob", "GET", "/api/instances")[1]["instances"] == []
    assert portal.call("bob", "GET", "/api/keys")[1]["keys"] == []
    status, error, _ = portal.call("bob", "POST", "/api/instances", {**LAUNCH, "key_name": "laptop"})
    assert status == 400 and error["field"] == "key_name"
    # Bob's costs do not include Alice's VM.
    events.apply(state_event(inst["id"], "running", "2026-01-01T00:00:00Z"), portal.store, portal.settings)
    assert portal.store.intervals_of(portal.sub("bob")) == []


def test_instance_tagged_for_alice_but_recorded_for_bob_is_refused(portal):
    """Both checks must agree: a (forged) ownership row alone does not grant access."""
    inst = launch(portal)
    portal.store.put_instance({"owner": portal.sub("bob"), "instance_id": inst["id"], "name": "forged"})
    assert portal.call("bob", "POST", f"/api/instances/{inst['id']}/stop")[0] == 404
    assert ec2_state(portal, inst["id"]) == "running"


# ------------------------------------------------------------------ quota and budget

def test_running_quota(portal):
    for n in range(portal.settings.max_running_per_user):
        launch(portal, name=f"vm{n}")
    status, error, _ = portal.call("alice", "POST", "/api/instances", {**LAUNCH, "name": "one-too-many"})
    assert status == 409 and error["error"] == "quota"


def overspend(portal, user: str, usd: float) -> None:
    now = datetime.now(timezone.utc)
    start = max(ledger.month_start(now), now - timedelta(hours=2))
    hours = (now - start).total_seconds() / 3600
    portal.store.open_interval(portal.sub(user), ledger.Interval("i-00000000000000001", "compute", start, now,
                                                                 usd / max(hours, 1e-6)))


def test_budget_warn_then_refuse_launch_and_start(portal):
    overspend(portal, "alice", 85)
    assert portal.call("alice", "GET", "/api/me")[1]["budget"]["state"] == "warn"
    inst = launch(portal)
    portal.call("alice", "POST", f"/api/instances/{inst['id']}/stop")
    overspend(portal, "bob", 0)  # bob unaffected
    portal.store.open_interval(portal.sub("alice"), ledger.Interval(
        "i-00000000000000002", "compute", ledger.month_start(datetime.now(timezone.utc)),
        ledger.month_start(datetime.now(timezone.utc)) + timedelta(seconds=1), 3600 * 20))
    status, error, _ = portal.call("alice", "POST", "/api/instances", LAUNCH)
    assert status == 403 and error["error"] == "budget_exceeded" and "budget" in error["message"]
    assert portal.call("alice", "POST", f"/api/instances/{inst['id']}/start")[0] == 403
    assert portal.call("bob", "POST", "/api/instances", LAUNCH)[0] == 201


def test_enforcer_stops_vms_over_budget_and_leaves_others(portal):
    alice_vm, bob_vm = launch(portal), launch(portal, "bob")
    overspend(portal, "alice", 150)
    report = enforcer.enforce(ec2=portal.sandbox.client("ec2"), cloudwatch=portal.sandbox.client("cloudwatch"),
                              store=portal.store, settings=portal.settings, now=datetime.now(timezone.utc))
    assert report["over_budget"] == [alice_vm["id"]] and report["idle"] == []
    assert ec2_state(portal, alice_vm["id"]) in ("stopping", "stopped")
    assert ec2_state(portal, bob_vm["id"]) == "running"
    [view] = portal.call("alice", "GET", "/api/instances")[1]["instances"]
    assert "budget" in view["stop_reason"]


def test_enforcer_with_no_cpu_metrics_stops_nothing(portal):
    vm = launch(portal)
    report = enforcer.enforce(ec2=portal.sandbox.client("ec2"), cloudwatch=portal.sandbox.client("cloudwatch"),
                              store=portal.store, settings=portal.settings, now=datetime.now(timezone.utc) + timedelta(days=1))
    assert report["idle"] == [] and ec2_state(portal, vm["id"]) == "running"


# ------------------------------------------------------------------ ledger and reconcile

def test_ledger_from_state_change_events_is_idempotent_and_priced(portal):
    vm = launch(portal, instance_type="m6i.large", volume_gb=100)
    apply = lambda state, when: events.apply(state_event(vm["id"], state, when), portal.store, portal.settings)
    apply("pending", "2026-03-02T09:00:00Z")
    apply("running", "2026-03-02T09:00:00Z")
    apply("running", "2026-03-02T09:00:00Z")  # duplicate delivery
    apply("stopping", "2026-03-02T11:00:00Z")
    apply("stopped", "2026-03-02T11:01:00Z")  # already closed
    apply("running", "2026-03-03T09:00:00Z")
    apply("terminated", "2026-03-03T10:00:00Z")
    intervals = portal.store.intervals_of(portal.sub("alice"))
    compute = sorted((i for i in intervals if i.kind == "compute"), key=lambda i: i.start)
    assert [(ledger.iso(i.start), ledger.iso(i.end)) for i in compute] == [
        ("2026-03-02T09:00:00Z", "2026-03-02T11:00:00Z"), ("2026-03-03T09:00:00Z", "2026-03-03T10:00:00Z")]
    [storage] = [i for i in intervals if i.kind == "storage"]
    assert ledger.iso(storage.end) == "2026-03-03T10:00:00Z"
    end = ledger.parse_time("2026-03-04T00:00:00Z")
    expected = 3 * 0.096 + 25 * 100 * 0.08 / 730
    assert ledger.spend(intervals, ledger.parse_time("2026-03-01T00:00:00Z"), end) == pytest.approx(expected)


def test_ledger_running_event_after_a_later_stop_is_closed(portal):
    vm = launch(portal)
    apply = lambda state, when: events.apply(state_event(vm["id"], state, when), portal.store, portal.settings)
    apply("stopped", "2026-03-02T11:00:00Z")
    apply("running", "2026-03-02T09:00:00Z")  # delivered late
    [compute] = [i for i in portal.store.intervals_of(portal.sub("alice")) if i.kind == "compute"]
    assert ledger.iso(compute.end) == "2026-03-02T11:00:00Z"


def test_ledger_ignores_foreign_instances_and_junk(portal):
    assert events.apply({"detail": {}}, portal.store, portal.settings).startswith("ignored")
    assert events.apply(state_event("i-0123456789abcdef0", "running", "yesterday"), portal.store,
                        portal.settings).startswith("ignored: unreadable time")
    assert events.apply(state_event("i-0123456789abcdef0", "running", "2026-03-02T09:00:00Z"),
                        portal.store, portal.settings).startswith("ignored")


def test_reconcile_makes_one_cost_explorer_call_grouped_by_owner(portal, moto):
    alice, bob = portal.sub("alice"), portal.sub("bob")
    result = {"ResultsByTime": [{"TimePeriod": {"Start": "2026-03-01", "End": "2026-03-15"}, "Total": {}, "Estimated": True,
                                 "Groups": [{"Keys": [f"Owner${alice}"], "Metrics": {"UnblendedCost": {"Amount": "12.5", "Unit": "USD"}}},
                                            {"Keys": [f"Owner${bob}"], "Metrics": {"UnblendedCost": {"Amount": "0.75", "Unit": "USD"}}},
                                            {"Keys": ["Owner$"], "Metrics": {"UnblendedCost": {"Amount": "99", "Unit": "USD"}}}]}]}
    requests.post(f"{moto.url}/moto-api/static/ce/cost-and-usage-results", json={"results": [result]}).raise_for_status()
    report = reconcile.reconcile(portal.sandbox.client("ce"), portal.store, portal.settings, datetime(2026, 3, 15).date())
    assert report["calls"] == 1 and report["users"] == 2 and report["billed_through"] == "2026-03-14"
    assert portal.call("alice", "GET", "/api/costs")[1]["billed"] == {"usd": 12.5, "through": "2026-03-14"}
    assert portal.call("alice", "GET", "/api/admin/costs")[1]["billed_through"] == "2026-03-14"


def test_vm_names_are_unique_per_user(portal):
    launch(portal)
    status, error, _ = portal.call("alice", "POST", "/api/instances", LAUNCH)
    assert status == 409 and error["field"] == "name"
    assert portal.call("bob", "POST", "/api/instances", LAUNCH)[0] == 201  # names are per user


def test_admin_budget_for_an_unknown_user_is_404(portal):
    assert portal.call("alice", "PUT", "/api/admin/budgets/no-such-user", {"monthly_usd": 5})[0] == 404


def test_a_launch_whose_record_cannot_be_written_leaves_no_vm_running(portal, monkeypatch):
    def refuse(item):
        raise RuntimeError("DynamoDB unavailable")

    monkeypatch.setattr(portal.api.store, "put_instance", refuse)
    status, error, _ = portal.call("alice", "POST", "/api/instances", LAUNCH)
    assert status == 500 and "request" in error["message"]
    ec2 = portal.sandbox.client("ec2")
    states = [i["State"]["Name"] for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert states and all(s in ("shutting-down", "terminated") for s in states)
