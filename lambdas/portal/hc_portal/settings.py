"""Portal settings: the `portal:` section of instance.yaml plus what the stack wired in.

The stack (and the sandbox) pass one compact JSON document in $PORTAL_SETTINGS and the table
names in $INSTANCES_TABLE, $LEDGER_TABLE and $BUDGETS_TABLE.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import lru_cache

HOURS_PER_MONTH = 730  # AWS's convention for turning monthly prices into hourly ones


@dataclass(frozen=True)
class Settings:
    region: str
    portal_name: str
    images: list[dict]
    instance_types: list[dict]
    ebs_price_gb_month: dict[str, float]
    volume_gb: dict
    max_running_per_user: int
    monthly_budget_usd: float
    budget_warn_ratio: float
    idle_stop: dict
    subnet_ids: list[str] = field(default_factory=list)
    security_group_id: str | None = None
    instance_profile_arn: str | None = None
    actor_role_arn: str | None = None
    instances_table: str = "portal-instances"
    ledger_table: str = "portal-ledger"
    budgets_table: str = "portal-budgets"

    def image(self, name: str) -> dict | None:
        return next((i for i in self.images if i["name"] == name), None)

    def hourly_price(self, instance_type: str) -> float | None:
        """USD/h of a type in this region, or None if the type is not offered here."""
        entry = next((t for t in self.instance_types if t["type"] == instance_type), None)
        return None if entry is None else entry["prices"].get(self.region)

    def launchable_types(self) -> list[dict]:
        """The allow list as offered in this region (a type needs a price here)."""
        out = []
        for t in self.instance_types:
            price = t["prices"].get(self.region)
            if price is not None:
                out.append({"type": t["type"], "vcpus": t["vcpus"], "memory_gib": t["memory_gib"],
                            "gpus": t.get("gpus", 0), "price_per_hour": price})
        return out

    def storage_rate_per_hour(self, volume_gb: int) -> float:
        return volume_gb * self.ebs_price_gb_month.get(self.region, 0.0) / HOURS_PER_MONTH


def from_dict(doc: dict, environ=None) -> Settings:
    environ = os.environ if environ is None else environ
    return Settings(
        region=doc.get("region") or environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        portal_name=doc["portal_name"],
        images=doc["images"],
        instance_types=doc["instance_types"],
        ebs_price_gb_month=doc.get("ebs_price_gb_month", {}),
        volume_gb=doc["volume_gb"],
        max_running_per_user=doc["max_running_per_user"],
        monthly_budget_usd=float(doc["monthly_budget_usd"]),
        budget_warn_ratio=float(doc["budget_warn_ratio"]),
        idle_stop=doc["idle_stop"],
        subnet_ids=doc.get("subnet_ids", []),
        security_group_id=doc.get("security_group_id"),
        instance_profile_arn=doc.get("instance_profile_arn"),
        actor_role_arn=doc.get("actor_role_arn"),
        instances_table=environ.get("INSTANCES_TABLE", "portal-instances"),
        ledger_table=environ.get("LEDGER_TABLE", "portal-ledger"),
        budgets_table=environ.get("BUDGETS_TABLE", "portal-budgets"),
    )


@lru_cache(maxsize=4)
def _parse(raw: str, tables: tuple[str, str, str]) -> Settings:
    env = dict(zip(("INSTANCES_TABLE", "LEDGER_TABLE", "BUDGETS_TABLE"), tables))
    env["AWS_REGION"] = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return from_dict(json.loads(raw), env)


def current() -> Settings:
    """Settings of this process (cached per distinct environment)."""
    tables = tuple(os.environ.get(k, "") for k in ("INSTANCES_TABLE", "LEDGER_TABLE", "BUDGETS_TABLE"))
    return _parse(os.environ["PORTAL_SETTINGS"], tables)


SETTINGS_KEYS = ("images", "instance_types", "ebs_price_gb_month", "volume_gb", "max_running_per_user",
                 "monthly_budget_usd", "budget_warn_ratio", "idle_stop")


def document(portal: dict, *, portal_name: str, **wired) -> dict:
    """$PORTAL_SETTINGS from the `portal:` config section plus what the deployment wired in
    (subnet_ids, security_group_id, instance_profile_arn, actor_role_arn, region)."""
    doc = {key: portal[key] for key in SETTINGS_KEYS}
    doc["images"] = [{k: v for k, v in image.items() if k != "description" or v} for image in portal["images"]]
    return {"portal_name": portal_name, **doc, **{k: v for k, v in wired.items() if v is not None}}
