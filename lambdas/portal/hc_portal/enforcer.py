"""Every few minutes: stop the VMs of users over budget, and VMs idle for too long.

Acts with its own role, which may only stop instances tagged with this portal.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import boto3
from botocore.exceptions import ClientError

from hc_portal import budget, ledger
from hc_portal.api import budget_status
from hc_portal.launch import OWNER_TAG, PORTAL_TAG
from hc_portal.settings import Settings, current
from hc_portal.store import Store

log = logging.getLogger()
log.setLevel(logging.INFO)


def running_portal_instances(ec2, settings: Settings) -> list[dict]:
    out = []
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[
        {"Name": f"tag:{PORTAL_TAG}", "Values": [settings.portal_name]},
        {"Name": "instance-state-name", "Values": ["running"]},
    ]):
        for reservation in page["Reservations"]:
            out += reservation["Instances"]
    return out


def cpu_datapoints(cloudwatch, instance_id: str, minutes: int, now: datetime) -> list[dict]:
    return cloudwatch.get_metric_statistics(
        Namespace="AWS/EC2", MetricName="CPUUtilization",
        Dimensions=[{"Name": "InstanceId", "Value": instance_id}],
        StartTime=now - timedelta(minutes=minutes), EndTime=now, Period=300, Statistics=["Maximum"],
    ).get("Datapoints", [])


def enforce(*, ec2, cloudwatch, store: Store, settings: Settings, now: datetime) -> dict:
    report = {"over_budget": [], "idle": [], "checked": 0}
    instances = running_portal_instances(ec2, settings)
    report["checked"] = len(instances)
    by_owner: dict[str, list[dict]] = {}
    for instance in instances:
        owner = next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == OWNER_TAG), None)
        if owner:
            by_owner.setdefault(owner, []).append(instance)
    to_stop: dict[str, tuple[str, str]] = {}
    for owner, owned in by_owner.items():
        if budget_status(store, settings, owner, now)["state"] == "exceeded":
            for instance in owned:
                to_stop[instance["InstanceId"]] = (owner, "stopped: monthly budget used up")
                report["over_budget"].append(instance["InstanceId"])
    idle = settings.idle_stop
    if idle.get("enabled", True):
        for owner, owned in by_owner.items():
            for instance in owned:
                iid = instance["InstanceId"]
                if iid in to_stop:
                    continue
                points = cpu_datapoints(cloudwatch, iid, idle["minutes"], now)
                if budget.is_idle(points, cpu_percent=idle["cpu_percent"], minutes=idle["minutes"], now=now,
                                  running_since=instance["LaunchTime"]):
                    to_stop[iid] = (owner, f"stopped: idle (CPU below {idle['cpu_percent']}% for {idle['minutes']} min)")
                    report["idle"].append(iid)
    report["failed"] = []
    for iid, (owner, reason) in sorted(to_stop.items()):
        # One at a time: an instance that cannot be stopped never spares the others.
        try:
            ec2.stop_instances(InstanceIds=[iid])
        except ClientError as exc:
            log.error("could not stop %s: %s", iid, exc)
            report["failed"].append(iid)
            continue
        if store.owned_instance(owner, iid):
            store.mark_instance(owner, iid, stop_reason=reason)
    report["at"] = ledger.iso(now)
    return report


def handle(event: dict, context=None) -> dict:
    settings = current()
    report = enforce(ec2=boto3.client("ec2"), cloudwatch=boto3.client("cloudwatch"), store=Store(settings),
                     settings=settings, now=datetime.now(timezone.utc))
    log.info("enforced: %s", report)
    return report
