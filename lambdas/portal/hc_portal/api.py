"""The portal's JSON API: one Lambda behind an HTTP API (payload v2.0, Cognito JWT authorizer).

Each route is a small function of (caller, event) → (status, body). The owner of everything is
the verified token's ``sub``; every action on an instance or key first checks the ownership
record, then runs as the actor role whose IAM policy checks the Owner tag again.
"""
from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime, timezone

import boto3
from botocore.exceptions import ClientError

from hc_portal import budget, ledger, validation
from hc_portal.actor import ec2_as
from hc_portal.caller import Caller, caller
from hc_portal.errors import ApiError, bad, not_found
from hc_portal.launch import OWNER_TAG, PORTAL_TAG, ec2_key_name, run_instances_request, tags
from hc_portal.settings import Settings, current
from hc_portal.ssh import session_manager_command, ssh_command, ssh_user
from hc_portal.store import Store

log = logging.getLogger()
log.setLevel(logging.INFO)

ACTIVE_STATES = ("pending", "running")
LISTED_STATES = ("pending", "running", "stopping", "stopped")
HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------ shared views

def budget_status(store: Store, settings: Settings, owner: str, now: datetime, intervals=None) -> dict:
    intervals = store.intervals_of(owner) if intervals is None else intervals
    user = store.user(owner)
    monthly = float(user.get("budget_usd", settings.monthly_budget_usd))
    spent = ledger.spend(intervals, ledger.month_start(now), now)
    out = budget.status(spent=spent, budget=monthly, warn_ratio=settings.budget_warn_ratio, now=now)
    out["override"] = "budget_usd" in user
    return out


def _tags(instance: dict) -> dict:
    return {t["Key"]: t["Value"] for t in instance.get("Tags", [])}


def instance_view(instance: dict, record: dict, settings: Settings, now: datetime) -> dict:
    labels = _tags(instance)
    state = instance["State"]["Name"]
    os_family = labels.get("heliocloud:os") or record.get("os", "amazon-linux")
    host = instance.get("PublicDnsName") or instance.get("PublicIpAddress") or instance.get("PrivateIpAddress")
    launched = instance["LaunchTime"]
    running_seconds = int((now - launched).total_seconds()) if state in ACTIVE_STATES else None
    return {
        "id": instance["InstanceId"],
        "name": labels.get("Name") or record.get("name"),
        "state": state,
        "os": os_family,
        "image": labels.get("heliocloud:image") or record.get("image"),
        "instance_type": instance["InstanceType"],
        "price_per_hour": settings.hourly_price(instance["InstanceType"]),
        "volume_gb": record.get("volume_gb"),
        "key_name": record.get("key_name"),
        "ssh_user": ssh_user(os_family),
        "ssh_command": ssh_command(os_family=os_family, host=host, key_name=record.get("key_name"))
        if state == "running" else None,
        "session_manager_command": session_manager_command(instance["InstanceId"], settings.region),
        "public_ip": instance.get("PublicIpAddress"),
        "launched_at": ledger.iso(launched),
        "running_seconds": running_seconds,
        "stop_reason": record.get("stop_reason"),
    }


def _describe(ec2, **kwargs) -> list[dict]:
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(**kwargs):
        for reservation in page["Reservations"]:
            out += reservation["Instances"]
    return out


def owned_ec2_instances(ec2, settings: Settings, owner: str, states=LISTED_STATES) -> list[dict]:
    return _describe(ec2, Filters=[
        {"Name": f"tag:{OWNER_TAG}", "Values": [owner]},
        {"Name": f"tag:{PORTAL_TAG}", "Values": [settings.portal_name]},
        {"Name": "instance-state-name", "Values": list(states)},
    ])


# ------------------------------------------------------------------ routes

class Api:
    """Routes bound to clients; the Lambda builds one per container, tests one per moto server."""

    def __init__(self, settings: Settings, *, ec2=None, ssm=None, clock=now_utc):
        self.settings = settings
        self.store = Store(settings)
        self.ec2 = ec2 or boto3.client("ec2")  # reads only; writes go through the actor role
        self.ssm = ssm or boto3.client("ssm")
        self.clock = clock

    # --- who am I, what may I launch
    def me(self, who: Caller, event: dict):
        self.store.remember_user(who.sub, who.email)
        return 200, {"sub": who.sub, "email": who.email, "admin": who.admin,
                     "budget": budget_status(self.store, self.settings, who.sub, self.clock()),
                     "max_running": self.settings.max_running_per_user}

    def catalog(self, who: Caller, event: dict):
        s = self.settings
        return 200, {
            "region": s.region,
            "images": [{"name": i["name"], "os": i["os"], "ssh_user": ssh_user(i["os"]),
                        "description": i.get("description", "")} for i in s.images],
            "instance_types": s.launchable_types(),
            "volume_gb": s.volume_gb,
            "max_running": s.max_running_per_user,
            "ebs_price_gb_month": s.ebs_price_gb_month.get(s.region),
        }

    # --- instances
    def list_instances(self, who: Caller, event: dict):
        now = self.clock()
        records = {r["instance_id"]: r for r in self.store.instances_of(who.sub)}
        # Both must agree: the ownership record and the Owner tag EC2 reports.
        views = [instance_view(i, records[i["InstanceId"]], self.settings, now)
                 for i in owned_ec2_instances(self.ec2, self.settings, who.sub) if i["InstanceId"] in records]
        views.sort(key=lambda v: v["launched_at"], reverse=True)
        return 200, {"instances": views}

    def launch(self, who: Caller, event: dict):
        s, now = self.settings, self.clock()
        request = validation.launch_request(validation.json_body(event), s)
        budget.refuse_if_exceeded(budget_status(self.store, s, who.sub, now), "launch a VM")
        listed = owned_ec2_instances(self.ec2, s, who.sub)
        if any(_tags(i).get("Name") == request.name for i in listed):
            raise ApiError(409, f"name: you already have a VM named {request.name!r}", field="name", code="conflict")
        active = [i for i in listed if i["State"]["Name"] in ACTIVE_STATES]
        if len(active) >= s.max_running_per_user:
            raise ApiError(409, f"You already have {len(active)} VM(s) running or starting, the most allowed "
                                f"({s.max_running_per_user}). Stop one first.", code="quota")
        if request.key_name and not self._own_key(who.sub, request.key_name):
            raise bad("key_name", f"you have no key pair named {request.key_name!r}")
        image_id, root_device = self._resolve_image(request.image)
        spec = run_instances_request(settings=s, owner=who.sub, request=request, image_id=image_id,
                                     root_device=root_device, client_token=str(uuid.uuid4()))
        actor = ec2_as(who.sub, s)
        instance = self._ec2_call(lambda: actor.run_instances(**spec))["Instances"][0]
        record = {"owner": who.sub, "instance_id": instance["InstanceId"], "name": request.name,
                  "image": request.image, "os": s.image(request.image)["os"], "instance_type": request.instance_type,
                  "volume_gb": request.volume_gb, "key_name": request.key_name, "email": who.email,
                  "launched_at": ledger.iso(now)}
        try:
            self.store.put_instance({k: v for k, v in record.items() if v is not None})
        except Exception:
            # Without its ownership record the VM would be invisible to its owner and unpriced:
            # never leave one running.
            log.exception("ownership record failed; terminating %s", instance["InstanceId"])
            actor.terminate_instances(InstanceIds=[instance["InstanceId"]])
            raise
        return 201, {"instance": instance_view(instance, record, s, now)}

    def _owned(self, who: Caller, event: dict) -> dict:
        """The caller's instance, or 404 for anything else (missing or another user's)."""
        instance_id = validation.instance_id((event.get("pathParameters") or {}).get("id"))
        record = self.store.owned_instance(who.sub, instance_id)
        if record is None:
            raise not_found(f"instance {instance_id}")
        found = _describe(self.ec2, InstanceIds=[instance_id])
        if not found or _tags(found[0]).get(OWNER_TAG) != who.sub:
            raise not_found(f"instance {instance_id}")
        return {"record": record, "instance": found[0]}

    def start(self, who: Caller, event: dict):
        owned = self._owned(who, event)
        budget.refuse_if_exceeded(budget_status(self.store, self.settings, who.sub, self.clock()), "start a VM")
        active = owned_ec2_instances(self.ec2, self.settings, who.sub, ACTIVE_STATES)
        if owned["instance"]["State"]["Name"] not in ACTIVE_STATES and len(active) >= self.settings.max_running_per_user:
            raise ApiError(409, f"You already have {len(active)} VM(s) running, the most allowed. Stop one first.",
                           code="quota")
        iid = owned["instance"]["InstanceId"]
        self._ec2_call(lambda: ec2_as(who.sub, self.settings).start_instances(InstanceIds=[iid]))
        self.store.mark_instance(who.sub, iid, stop_reason="")
        return 202, {"id": iid, "action": "start"}

    def stop(self, who: Caller, event: dict):
        iid = self._owned(who, event)["instance"]["InstanceId"]
        self._ec2_call(lambda: ec2_as(who.sub, self.settings).stop_instances(InstanceIds=[iid]))
        self.store.mark_instance(who.sub, iid, stop_reason="stopped by you")
        return 202, {"id": iid, "action": "stop"}

    def terminate(self, who: Caller, event: dict):
        iid = self._owned(who, event)["instance"]["InstanceId"]
        self._ec2_call(lambda: ec2_as(who.sub, self.settings).terminate_instances(InstanceIds=[iid]))
        self.store.mark_instance(who.sub, iid, terminated_at=ledger.iso(self.clock()))
        return 202, {"id": iid, "action": "terminate"}

    # --- key pairs
    def _keys(self, owner: str) -> list[dict]:
        pairs = self.ec2.describe_key_pairs(Filters=[{"Name": f"tag:{OWNER_TAG}", "Values": [owner]},
                                                     {"Name": f"tag:{PORTAL_TAG}", "Values": [self.settings.portal_name]}])
        prefix = ec2_key_name(owner, "")
        return [k for k in pairs["KeyPairs"] if k["KeyName"].startswith(prefix)]

    def _own_key(self, owner: str, name: str) -> dict | None:
        wanted = ec2_key_name(owner, name)
        return next((k for k in self._keys(owner) if k["KeyName"] == wanted), None)

    def list_keys(self, who: Caller, event: dict):
        prefix = ec2_key_name(who.sub, "")
        keys = [{"name": k["KeyName"][len(prefix):], "fingerprint": k.get("KeyFingerprint"),
                 "type": k.get("KeyType", "rsa"), "created_at": ledger.iso(k["CreateTime"]) if k.get("CreateTime") else None}
                for k in self._keys(who.sub)]
        return 200, {"keys": sorted(keys, key=lambda k: k["name"])}

    def create_key(self, who: Caller, event: dict):
        name = validation.key_request(validation.json_body(event))
        if self._own_key(who.sub, name):
            raise ApiError(409, f"name: you already have a key pair named {name!r}", field="name", code="conflict")
        created = self._ec2_call(lambda: ec2_as(who.sub, self.settings).create_key_pair(
            KeyName=ec2_key_name(who.sub, name), KeyType="ed25519", KeyFormat="pem",
            TagSpecifications=[{"ResourceType": "key-pair", "Tags": tags(who.sub, name, self.settings)}]))
        # The private key passes through this response once and is stored nowhere.
        return 201, {"name": name, "fingerprint": created.get("KeyFingerprint"), "private_key": created["KeyMaterial"],
                     "filename": f"{name}.pem",
                     "note": "Save this file now (chmod 600); it is not stored and cannot be shown again."}

    def delete_key(self, who: Caller, event: dict):
        name = validation.key_name((event.get("pathParameters") or {}).get("name"))
        key = self._own_key(who.sub, name)
        if key is None:
            raise not_found(f"key pair {name}")
        self._ec2_call(lambda: ec2_as(who.sub, self.settings).delete_key_pair(KeyName=key["KeyName"]))
        return 200, {"deleted": name}

    # --- spend
    def costs(self, who: Caller, event: dict):
        now = self.clock()
        intervals = self.store.intervals_of(who.sub)
        user = self.store.user(who.sub)
        return 200, {
            **ledger.summary(intervals, now),
            "as_of": ledger.iso(now),
            "budget": budget_status(self.store, self.settings, who.sub, now, intervals),
            "billed": {"usd": user.get("billed_usd"), "through": user.get("billed_through")},
            "currency": "USD",
        }

    def admin_costs(self, who: Caller, event: dict):
        self._require_admin(who)
        now = self.clock()
        by_owner = self.store.all_intervals()
        users = {u["owner"]: u for u in self.store.users()}
        rows = []
        for owner in sorted(set(users) | set(by_owner)):
            intervals = by_owner.get(owner, [])
            s = ledger.summary(intervals, now)
            user = users.get(owner, {})
            rows.append({"sub": owner, "email": user.get("email"), "month_to_date": s["month_to_date"],
                         "last_7_days": s["last_7_days"], "rate_per_hour": s["rate_per_hour"],
                         "budget": budget_status(self.store, self.settings, owner, now, intervals),
                         "billed": {"usd": user.get("billed_usd"), "through": user.get("billed_through")}})
        rows.sort(key=lambda r: r["month_to_date"], reverse=True)
        return 200, {"users": rows, "as_of": ledger.iso(now),
                     "total_month_to_date": round(sum(r["month_to_date"] for r in rows), 4),
                     "billed_through": self.store.reconcile_record().get("billed_through")}

    def admin_set_budget(self, who: Caller, event: dict):
        self._require_admin(who)
        sub = validation.user_sub((event.get("pathParameters") or {}).get("sub"))
        monthly = validation.budget_request(validation.json_body(event))
        if "email" not in self.store.user(sub):
            raise not_found(f"user {sub} (users appear once they have signed in)")
        self.store.set_budget(sub, monthly)
        return 200, {"sub": sub, "budget": budget_status(self.store, self.settings, sub, self.clock())}

    # --- helpers
    @staticmethod
    def _require_admin(who: Caller) -> None:
        if not who.admin:
            raise ApiError(403, "Only members of the admins group can see this.")

    def _resolve_image(self, name: str) -> tuple[str, str]:
        image = self.settings.image(name)
        image_id = image.get("ami")
        if not image_id:
            try:
                image_id = self.ssm.get_parameter(Name=image["ssm_parameter"])["Parameter"]["Value"]
            except ClientError as exc:
                log.error("cannot resolve %s: %s", image["ssm_parameter"], exc)
                raise ApiError(503, f"The image {name!r} is not available in {self.settings.region} right now.",
                               code="image_unavailable") from None
        described = self.ec2.describe_images(ImageIds=[image_id])["Images"]
        root = described[0].get("RootDeviceName") if described else None
        return image_id, root or "/dev/xvda"

    @staticmethod
    def _ec2_call(fn):
        try:
            return fn()
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            log.warning("EC2 refused: %s %s", code, exc.response["Error"].get("Message"))
            if code in ("UnauthorizedOperation", "AccessDenied", "AccessDeniedException"):
                raise ApiError(403, "EC2 refused the action for your account.", code="forbidden") from None
            if code in ("InsufficientInstanceCapacity", "InstanceLimitExceeded", "VcpuLimitExceeded"):
                raise ApiError(409, f"AWS has no capacity for this right now ({code}); try another type or later.",
                               code="capacity") from None
            if code == "IncorrectInstanceState":
                raise ApiError(409, "The VM is not in a state that allows this; wait a moment and retry.",
                               code="state") from None
            raise


ROUTES = {
    "GET /api/me": Api.me,
    "GET /api/catalog": Api.catalog,
    "GET /api/instances": Api.list_instances,
    "POST /api/instances": Api.launch,
    "POST /api/instances/{id}/start": Api.start,
    "POST /api/instances/{id}/stop": Api.stop,
    "DELETE /api/instances/{id}": Api.terminate,
    "GET /api/keys": Api.list_keys,
    "POST /api/keys": Api.create_key,
    "DELETE /api/keys/{name}": Api.delete_key,
    "GET /api/costs": Api.costs,
    "GET /api/admin/costs": Api.admin_costs,
    "PUT /api/admin/budgets/{sub}": Api.admin_set_budget,
}


def match_route(method: str, path: str) -> tuple[str, dict] | None:
    """(route key, path parameters) for a request, as API Gateway would resolve it."""
    for key in ROUTES:
        route_method, template = key.split(" ", 1)
        if route_method != method:
            continue
        pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
        found = re.match(pattern, path)
        if found:
            return key, found.groupdict()
    return None


def respond(status: int, body: dict) -> dict:
    return {"statusCode": status, "headers": dict(HEADERS), "body": json.dumps(body, default=str)}


def dispatch(api: Api, event: dict) -> dict:
    route = event.get("routeKey")
    fn = ROUTES.get(route)
    try:
        if fn is None:
            raise ApiError(404, f"no route {route}")
        status, body = fn(api, caller(event), event)
        return respond(status, body)
    except ApiError as exc:
        return respond(exc.status, exc.body())
    except Exception:  # noqa: BLE001 - the user gets words and a request id, the log gets the trace
        request_id = (event.get("requestContext") or {}).get("requestId", "-")
        log.exception("unhandled error on %s (request %s)", route, request_id)
        return respond(500, {"error": "internal", "message": f"Something went wrong on our side (request {request_id})."})


_API: Api | None = None


def handle(event: dict, context=None) -> dict:
    """Lambda entry point."""
    global _API
    if _API is None or _API.settings is not current():
        _API = Api(current())
    return dispatch(_API, event)
