"""The portal's DynamoDB tables, declared once for the CDK stack and the sandbox."""
from __future__ import annotations

TABLES = {
    # logical name: (partition key, sort key, {index name: partition key})
    # The ledger's closed intervals carry ``expires_at`` (TTL, see ledger.RETAIN_DAYS).
    "instances": ("owner", "instance_id", {"by-instance": "instance_id"}),
    "ledger": ("owner", "interval", {}),
    "budgets": ("owner", None, {}),
}
ENV_VARS = {"instances": "INSTANCES_TABLE", "ledger": "LEDGER_TABLE", "budgets": "BUDGETS_TABLE"}
TTL_ATTRIBUTES = {"ledger": "expires_at"}
