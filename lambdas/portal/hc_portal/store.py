"""DynamoDB access: ownership records, ledger intervals and budgets (thin, no business rules).

Tables (names from the environment):
  instances  PK owner, SK instance_id; GSI ``by-instance`` on instance_id (for EC2 events)
  ledger     PK owner, SK interval (``<instance>#compute#<start>`` or ``<instance>#storage``)
  budgets    PK owner: e-mail, admin budget override, Cost Explorer figure and its date
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from hc_portal import ledger
from hc_portal.settings import Settings

RECONCILE_ITEM = "#reconcile"  # the budgets-table row recording the last Cost Explorer run


def _table(name: str):
    return boto3.resource("dynamodb").Table(name)


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _plain(item: dict) -> dict:
    return {k: (_number(v) if isinstance(v, Decimal) else v) for k, v in item.items()}


def _read_all(read, **kwargs) -> list[dict]:
    """Every page of a resource-table ``query`` or ``scan`` (the resource API has no paginators)."""
    items, start = [], None
    while True:
        page = read(**kwargs, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return [_plain(i) for i in items]


class Store:
    def __init__(self, settings: Settings):
        self.instances = _table(settings.instances_table)
        self.ledger = _table(settings.ledger_table)
        self.budgets = _table(settings.budgets_table)

    # ---- ownership
    def put_instance(self, item: dict) -> None:
        self.instances.put_item(Item={k: (Decimal(str(v)) if isinstance(v, float) else v) for k, v in item.items()})

    def owned_instance(self, owner: str, instance_id: str) -> dict | None:
        item = self.instances.get_item(Key={"owner": owner, "instance_id": instance_id}).get("Item")
        return _plain(item) if item else None

    def instances_of(self, owner: str) -> list[dict]:
        return _read_all(self.instances.query, KeyConditionExpression=Key("owner").eq(owner))

    def instance_by_id(self, instance_id: str) -> dict | None:
        found = _read_all(self.instances.query, IndexName="by-instance",
                           KeyConditionExpression=Key("instance_id").eq(instance_id))
        return found[0] if found else None

    def mark_instance(self, owner: str, instance_id: str, **attrs) -> None:
        names = {f"#{k}": k for k in attrs}
        values = {f":{k}": v for k, v in attrs.items()}
        self.instances.update_item(
            Key={"owner": owner, "instance_id": instance_id},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in attrs),
            ExpressionAttributeNames=names, ExpressionAttributeValues=values,
            ConditionExpression=Attr("owner").exists(),
        )

    # ---- ledger
    def intervals_of(self, owner: str) -> list[ledger.Interval]:
        return [ledger.from_item(i) for i in _read_all(self.ledger.query, KeyConditionExpression=Key("owner").eq(owner))]

    def all_intervals(self) -> dict[str, list[ledger.Interval]]:
        out: dict[str, list[ledger.Interval]] = {}
        for item in _read_all(self.ledger.scan):
            out.setdefault(item["owner"], []).append(ledger.from_item(item))
        return out

    def open_interval(self, owner: str, interval: ledger.Interval) -> bool:
        """Idempotent: a duplicate event finds the row there and changes nothing."""
        try:
            self.ledger.put_item(Item=ledger.to_item(owner, interval),
                                 ConditionExpression=Attr("interval").not_exists())
            return True
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise

    def close_intervals(self, owner: str, instance_id: str, kind: str, end: datetime) -> int:
        """Close every open interval of ``kind`` that started before ``end``; returns how many."""
        prefix = ledger.storage_key(instance_id) if kind == "storage" else f"{instance_id}#compute#"
        rows = _read_all(self.ledger.query, KeyConditionExpression=Key("owner").eq(owner) & Key("interval").begins_with(prefix))
        closed = 0
        for row in rows:
            if row.get("end") or ledger.parse_time(row["start"]) > end:
                continue
            try:
                self.ledger.update_item(
                    Key={"owner": owner, "interval": row["interval"]},
                    UpdateExpression="SET #end = :end, expires_at = :ttl", ExpressionAttributeNames={"#end": "end"},
                    ExpressionAttributeValues={":end": ledger.iso(end), ":ttl": ledger.expires_at(end)},
                    ConditionExpression=Attr("end").not_exists(),
                )
                closed += 1
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        return closed

    # ---- budgets and users
    def user(self, owner: str) -> dict:
        return _plain(self.budgets.get_item(Key={"owner": owner}).get("Item") or {"owner": owner})

    def remember_user(self, owner: str, email: str) -> None:
        self.budgets.update_item(Key={"owner": owner}, UpdateExpression="SET email = :e",
                                 ExpressionAttributeValues={":e": email})

    def set_budget(self, owner: str, monthly_usd: float | None) -> None:
        if monthly_usd is None:
            self.budgets.update_item(Key={"owner": owner}, UpdateExpression="REMOVE budget_usd")
        else:
            self.budgets.update_item(Key={"owner": owner}, UpdateExpression="SET budget_usd = :b",
                                     ExpressionAttributeValues={":b": Decimal(str(monthly_usd))})

    def users(self) -> list[dict]:
        return [u for u in _read_all(self.budgets.scan) if u["owner"] != RECONCILE_ITEM]

    def set_billed(self, owner: str, usd: float, through: str) -> None:
        self.budgets.update_item(Key={"owner": owner}, UpdateExpression="SET billed_usd = :u, billed_through = :t",
                                 ExpressionAttributeValues={":u": Decimal(str(round(usd, 4))), ":t": through})

    def reconcile_record(self) -> dict:
        return self.user(RECONCILE_ITEM)
