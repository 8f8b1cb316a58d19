"""Portal pure functions: ledger and budget arithmetic, the idle rule, validation, SSH commands,
claims, the launch request, routing and the Cost Explorer parsing."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hc_portal import budget, ledger, reconcile, validation
from hc_portal.api import ROUTES, match_route
from hc_portal.caller import caller, groups_of
from hc_portal.errors import ApiError
from hc_portal.launch import ec2_key_name, run_instances_request
from hc_portal.settings import document, from_dict
from hc_portal.ssh import ssh_command, ssh_user
from heliocloud.config import validate as validate_instance

pytestmark = pytest.mark.unit


def validate(doc: dict) -> dict:
    return validate_instance({"instance": {"name": "helio"}, **doc})
T = ledger.parse_time


@pytest.fixture(scope="module")
def settings():
    portal = validate({})["portal"]
    return from_dict(document(portal, portal_name="helio", subnet_ids=["subnet-a", "subnet-b"], security_group_id="sg-1",
                              instance_profile_arn="arn:aws:iam::1:instance-profile/vm", actor_role_arn="arn:aws:iam::1:role/a",
                              region="us-east-1"), {})


# ------------------------------------------------------------------ ledger

def iv(start, end, rate, kind="compute", iid="i-1"):
    return ledger.Interval(iid, kind, T(start), T(end) if end else None, rate)


def test_interval_crossing_the_seven_day_window_counts_only_inside():
    now = T("2026-03-10T12:00:00Z")
    # Ran from 9 days ago to 5 days ago at $1/h: only the part from 6 days ago 00:00 counts.
    intervals = [iv("2026-03-01T12:00:00Z", "2026-03-05T12:00:00Z", 1.0)]
    s = ledger.summary(intervals, now)
    assert [d["date"] for d in s["daily"]] == [f"2026-03-{d:02d}" for d in range(4, 11)]
    assert s["daily"][0]["usd"] == pytest.approx(24) and s["daily"][1]["usd"] == pytest.approx(12)
    assert s["last_7_days"] == pytest.approx(36)
    assert s["month_to_date"] == pytest.approx(96) and s["rate_per_hour"] == 0


def test_stop_start_gives_two_intervals_and_open_interval_runs_to_now():
    now = T("2026-03-10T12:00:00Z")
    intervals = [iv("2026-03-10T01:00:00Z", "2026-03-10T03:00:00Z", 0.5), iv("2026-03-10T10:00:00Z", None, 0.5)]
    s = ledger.summary(intervals, now)
    assert s["daily"][-1]["usd"] == pytest.approx(2.0)  # 2 h + 2 h so far
    assert s["rate_per_hour"] == pytest.approx(0.5)


def test_storage_accrues_while_stopped_and_month_boundary_splits():
    now = T("2026-04-01T06:00:00Z")
    storage = iv("2026-03-31T00:00:00Z", None, 0.01, kind="storage")
    s = ledger.summary([storage], now)
    assert s["month_to_date"] == pytest.approx(0.06)
    assert s["retained_total"] == pytest.approx(0.30)


def test_interval_item_round_trip():
    interval = iv("2026-03-10T01:00:00Z", None, 0.0416)
    item = ledger.to_item("sub-1", interval)
    assert item["interval"] == "i-1#compute#2026-03-10T01:00:00Z" and "end" not in item and "expires_at" not in item
    assert ledger.from_item(item) == interval
    closed = ledger.to_item("sub-1", iv("2026-03-10T01:00:00Z", "2026-03-10T02:00:00Z", 0.1))
    assert closed["expires_at"] == int(T("2027-04-14T02:00:00Z").timestamp())


# ------------------------------------------------------------------ budget

@pytest.mark.parametrize("spent, state", [(0, "ok"), (79.99, "ok"), (80, "warn"), (99.99, "warn"), (100, "exceeded"), (150, "exceeded")])
def test_budget_states(spent, state):
    s = budget.status(spent=spent, budget=100, warn_ratio=0.8, now=T("2026-12-15T00:00:00Z"))
    assert s["state"] == state and s["resets"] == "2027-01-01"


def test_zero_budget_means_no_spending():
    s = budget.status(spent=0, budget=0, warn_ratio=0.8, now=T("2026-03-15T00:00:00Z"))
    assert s["state"] == "exceeded"
    with pytest.raises(ApiError) as err:
        budget.refuse_if_exceeded(s, "launch a VM")
    assert err.value.status == 403 and "launch a VM" in err.value.message


def test_idle_rule():
    now = datetime(2026, 3, 10, 12, tzinfo=timezone.utc)
    points = [{"Timestamp": now - timedelta(minutes=5 * k), "Maximum": 2.0} for k in range(24)]
    kw = dict(cpu_percent=5, minutes=120, now=now)
    assert budget.is_idle(points, running_since=now - timedelta(hours=3), **kw)
    assert not budget.is_idle(points, running_since=now - timedelta(minutes=30), **kw)  # too young
    assert not budget.is_idle([], running_since=now - timedelta(hours=3), **kw)  # no metrics: never idle
    assert not budget.is_idle(points[:5], running_since=now - timedelta(hours=3), **kw)  # window not covered
    busy = points[:-1] + [{"Timestamp": now - timedelta(minutes=60), "Maximum": 40.0}]
    assert not budget.is_idle(busy, running_since=now - timedelta(hours=3), **kw)


# ------------------------------------------------------------------ validation, launch, ssh

def test_launch_request_defaults_volume(settings):
    req = validation.launch_request({"name": "a", "image": "Amazon Linux 2023", "instance_type": "g5.xlarge"}, settings)
    assert req.volume_gb == 50 and req.key_name is None


def test_types_without_a_price_in_the_region_are_not_offered():
    portal = validate({"portal": {"instance_types": [
        {"type": "t3.small", "vcpus": 2, "memory_gib": 2, "prices": {"eu-west-1": 0.02}}]}})["portal"]
    s = from_dict(document(portal, portal_name="x", region="us-east-1"), {})
    assert s.launchable_types() == []
    with pytest.raises(ApiError) as err:
        validation.launch_request({"name": "a", "image": "Amazon Linux 2023", "instance_type": "t3.small"}, s)
    assert err.value.field == "instance_type"


def test_run_instances_request_tags_and_hardening(settings):
    req = validation.launch_request({"name": "gpu1", "image": "Ubuntu 24.04 LTS", "instance_type": "g4dn.xlarge",
                                     "volume_gb": 80, "key_name": "laptop"}, settings)
    spec = run_instances_request(settings=settings, owner="sub-1", request=req, image_id="ami-12345678",
                                 root_device="/dev/sda1", client_token="t")
    kinds = {t["ResourceType"]: {x["Key"]: x["Value"] for x in t["Tags"]} for t in spec["TagSpecifications"]}
    assert set(kinds) == {"instance", "volume", "network-interface"}
    assert all(tags["Owner"] == "sub-1" and tags["Name"] == "gpu1" and tags["heliocloud:portal"] == "helio"
               and tags["heliocloud:instance"] == "helio" for tags in kinds.values())
    ebs = spec["BlockDeviceMappings"][0]
    assert ebs["DeviceName"] == "/dev/sda1" and ebs["Ebs"] == {"VolumeSize": 80, "VolumeType": "gp3", "Encrypted": True,
                                                               "DeleteOnTermination": True}
    assert spec["MetadataOptions"]["HttpTokens"] == "required"
    assert spec["KeyName"] == ec2_key_name("sub-1", "laptop") and spec["SubnetId"] in ("subnet-a", "subnet-b")
    assert spec["SecurityGroupIds"] == ["sg-1"] and spec["IamInstanceProfile"]["Arn"].endswith("instance-profile/vm")


@pytest.mark.parametrize("os_family, user", [("amazon-linux", "ec2-user"), ("ubuntu", "ubuntu"), ("debian", "admin"),
                                             ("rhel", "ec2-user"), ("rocky", "rocky"), ("fedora", "fedora")])
def test_ssh_user_per_os(os_family, user):
    assert ssh_user(os_family) == user
    assert ssh_command(os_family=os_family, host="1.2.3.4", key_name="k") == f"ssh -i ~/.ssh/k.pem {user}@1.2.3.4"
    assert ssh_command(os_family=os_family, host=None, key_name="k") is None


def test_body_decoding():
    import base64
    assert validation.json_body({"body": base64.b64encode(b'{"a": 1}').decode(), "isBase64Encoded": True}) == {"a": 1}
    assert validation.json_body({"body": None}) == {}
    with pytest.raises(ApiError):
        validation.json_body({"body": "%%%", "isBase64Encoded": True})


# ------------------------------------------------------------------ claims and routes

def test_groups_claim_in_every_shape():
    assert groups_of("[admins staff]") == ("admins", "staff")
    assert groups_of(["admins"]) == ("admins",)
    assert groups_of(None) == () and groups_of("[]") == ()


def test_caller_comes_only_from_verified_claims():
    event = {"requestContext": {"authorizer": {"jwt": {"claims": {"sub": "s1", "email": "a@x.org", "cognito:groups": "[admins]"}}}},
             "body": '{"owner": "s2", "sub": "s2"}', "headers": {"x-owner": "s2"}}
    who = caller(event)
    assert who.sub == "s1" and who.admin
    with pytest.raises(ApiError) as err:
        caller({"body": '{"sub": "s2"}'})
    assert err.value.status == 401


def test_route_table_matches_the_architecture_note():
    assert set(ROUTES) >= {"GET /api/me", "GET /api/catalog", "GET /api/instances", "POST /api/instances",
                           "POST /api/instances/{id}/start", "POST /api/instances/{id}/stop", "DELETE /api/instances/{id}",
                           "GET /api/keys", "POST /api/keys", "DELETE /api/keys/{name}", "GET /api/costs", "GET /api/admin/costs"}
    assert match_route("DELETE", "/api/keys/laptop") == ("DELETE /api/keys/{name}", {"name": "laptop"})
    assert match_route("POST", "/api/instances/i-1/reboot") is None
    assert match_route("GET", "/api/instances/i-1/stop") is None


# ------------------------------------------------------------------ Cost Explorer

def test_reconcile_period_and_grouping():
    assert reconcile.period(datetime(2026, 3, 15).date()) == ("2026-03-01", "2026-03-15")
    assert reconcile.period(datetime(2026, 3, 1).date()) == ("2026-02-01", "2026-03-01")
    results = [{"Groups": [{"Keys": ["Owner$a"], "Metrics": {"UnblendedCost": {"Amount": "1.5"}}},
                           {"Keys": ["Owner$"], "Metrics": {"UnblendedCost": {"Amount": "9"}}}]},
               {"Groups": [{"Keys": ["Owner$a"], "Metrics": {"UnblendedCost": {"Amount": "0.5"}}},
                           {"Keys": ["Owner$b"], "Metrics": {}}, {"Keys": []}]}]
    assert reconcile.billed_by_owner(results) == {"a": 2.0}


# ------------------------------------------------------------------ config

def test_portal_config_defaults_and_errors():
    portal = validate({})["portal"]
    assert portal["ssh_cidrs"] == [] and portal["budget_warn_ratio"] == 0.8 and portal["max_running_per_user"] == 3
    assert any(t.get("gpus") for t in portal["instance_types"])
    with pytest.raises(Exception, match="ssh_cidrs"):
        validate({"portal": {"ssh_cidrs": ["0.0.0.0/0"]}})
    with pytest.raises(Exception, match="images"):
        validate({"portal": {"images": [{"name": "x", "os": "ubuntu"}]}})
    with pytest.raises(Exception, match="idle_stop.minutes"):
        validate({"portal": {"idle_stop": {"minutes": 1}}})


def test_price_list_parsing_and_refresh():
    from hc_portal import pricing

    product = {"product": {"attributes": {"instanceType": "g4dn.xlarge", "regionCode": "us-east-1"}},
               "terms": {"OnDemand": {"ABC.JRTCKXETXF": {"priceDimensions": {
                   "ABC.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": "0.5260000000"}}}}}}}
    import json as _json
    assert pricing.on_demand_usd([_json.dumps(product)]) == 0.526
    assert pricing.on_demand_usd([]) is None
    fields = {f["Field"]: f["Value"] for f in pricing.product_filters("g4dn.xlarge", "eu-west-1")}
    assert fields["regionCode"] == "eu-west-1" and fields["operatingSystem"] == "Linux" and fields["tenancy"] == "Shared"
    types = [{"type": "g4dn.xlarge", "vcpus": 4, "memory_gib": 16, "gpus": 1, "prices": {"us-east-1": 0.5, "eu-west-1": 0.6}}]
    new = pricing.refreshed(types, {("g4dn.xlarge", "us-east-1"): 0.526, ("g4dn.xlarge", "eu-west-1"): None})
    assert new[0]["prices"] == {"us-east-1": 0.526, "eu-west-1": 0.6} and types[0]["prices"]["us-east-1"] == 0.5
    validate({"portal": {"instance_types": new}})  # the output is a valid table


def test_portal_prices_command_is_registered():
    from heliocloud.cli import build_parser

    args = build_parser().parse_args(["portal", "prices", "--region", "eu-west-1"])
    assert args.regions == ["eu-west-1"] and args.func.__name__ == "run_prices"
