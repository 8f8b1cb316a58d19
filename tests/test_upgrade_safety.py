"""Upgrade and teardown safety: a changed non-structural setting never replaces a resource that
holds data, and every such resource is retained when its stack is deleted or it is replaced.

Two syntheses per run: the default instance (the session fixture) and one copy of it with every
change of CHANGES applied.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from heliocloud.commands.synth import synthesize

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[1]

# Settings an admin may change on a live instance: (dotted path in instance.yaml, new value).
# Each must differ from the default and must show up in the templates (Helm values included).
# A list item is addressed by its index: "daskhub.profiles.0.cpu".
CHANGES = [
    ("network.flow_log_retention_days", 90),
    ("auth.password_min_length", 16),
    ("daskhub.node_groups.dask-worker.max_size", 80),
    ("daskhub.node_groups.user.max_size", 20),
    ("daskhub.culling.idle_minutes", 90),
]

# Resource types that hold data, found by type wherever a stack puts them. Log groups are left
# out on purpose: operational logs with a retention period, deleted with their stack.
DATA_TYPES = {
    "AWS::S3::Bucket": "datasets, the CloudCatalog index, the portal page",
    "AWS::EFS::FileSystem": "home directories and shared folders",
    "AWS::Cognito::UserPool": "the accounts",
    "AWS::DynamoDB::Table": "ownership, spend ledger, budgets",
    "AWS::DynamoDB::GlobalTable": "tables replicated across regions",
    "AWS::KMS::Key": "the keys data is encrypted with",
}

# Data-type resources that hold nothing a deploy cannot recreate, each with its reason:
# (stack name suffix, logical id prefix) -> why it may be replaced or deleted.
DISPOSABLE: dict[tuple[str, str], str] = {
    ("-Registry", "IndexerState"): "per-object event order for the indexer; the index itself lives in the "
                                   "data bucket and `heliocloud registry rebuild` recreates it from a listing",
    ("-Portal", "WebUi"): "the portal's static pages, deployed from portal-ui/ on every cdk deploy",
}

# Properties the CloudFormation documentation marks "Update requires: Replacement" or immutable
# (the update fails), beyond the createOnlyProperties of the resource provider schemas.
DOCUMENTED_IMMUTABLE = {
    "AWS::S3::Bucket": {"BucketName"},
    "AWS::EFS::FileSystem": {"Encrypted", "KmsKeyId", "PerformanceMode", "AvailabilityZoneName"},
    "AWS::Cognito::UserPool": {"AliasAttributes", "UsernameAttributes", "UsernameConfiguration", "Schema"},
    "AWS::DynamoDB::Table": {"TableName", "KeySchema", "LocalSecondaryIndexes"},
    "AWS::DynamoDB::GlobalTable": {"TableName", "KeySchema", "LocalSecondaryIndexes"},
    "AWS::KMS::Key": {"KeySpec", "KeyUsage", "MultiRegion", "Origin"},
}


def immutable_properties(resource_type: str) -> set[str]:
    """Top-level properties whose change replaces the resource (or is refused)."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", resource_type).schema
    create_only = {p.split("/")[2] for p in schema.get("createOnlyProperties", []) if p.startswith("/properties/")}
    return create_only | DOCUMENTED_IMMUTABLE.get(resource_type, set())


def _disposable(stack: str, logical_id: str) -> bool:
    return any(stack.endswith(suffix) and logical_id.startswith(prefix) for suffix, prefix in DISPOSABLE)


def data_resources(templates: dict[str, dict]) -> dict[tuple[str, str], dict]:
    return {
        (stack, logical_id): body
        for stack, template in templates.items()
        for logical_id, body in template.get("Resources", {}).items()
        if body["Type"] in DATA_TYPES and not _disposable(stack, logical_id)
    }


def replacement_problems(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    """Why a deploy from ``before`` to ``after`` would replace or lose a data resource."""
    problems = []
    after_data = data_resources(after)
    for key, old in data_resources(before).items():
        new = after_data.get(key)
        name = "/".join(key)
        if new is None:
            problems.append(f"{name} ({old['Type']}): logical id gone, the resource would be deleted and a new one created")
            continue
        if new["Type"] != old["Type"]:
            problems.append(f"{name}: type changed {old['Type']} -> {new['Type']}")
            continue
        for prop in sorted(immutable_properties(old["Type"])):
            was, now = old.get("Properties", {}).get(prop), new.get("Properties", {}).get(prop)
            if was != now:
                problems.append(f"{name}: {prop} changed ({was!r} -> {now!r}) and forces a replacement")
    return problems


def retention_problems(templates: dict[str, dict]) -> list[str]:
    return [
        f"{stack}/{logical_id} ({body['Type']}): {policy} is {body.get(policy)!r}, must be 'Retain'"
        for (stack, logical_id), body in data_resources(templates).items()
        for policy in ("DeletionPolicy", "UpdateReplacePolicy")
        if body.get(policy) != "Retain"
    ]


def _keys(dotted: str) -> list:
    return [int(k) if k.isdigit() else k for k in dotted.split(".")]


def _set(config, dotted: str, value) -> None:
    *parents, leaf = _keys(dotted)
    for key in parents:
        config = config[key] if isinstance(config, list) else config.setdefault(key, {})
    config[leaf] = value


def _get(config, dotted: str):
    for key in _keys(dotted):
        if isinstance(config, list) and isinstance(key, int) and key < len(config):
            config = config[key]
        elif isinstance(config, dict):
            config = config.get(key)
        else:
            return None
    return config


@pytest.fixture(scope="module")
def default_config() -> dict:
    return yaml.safe_load((REPO / "instance.yaml").read_text())


@pytest.fixture(scope="module")
def changed_templates(default_config, tmp_path_factory) -> dict[str, dict]:
    """The default instance with every change of CHANGES applied, synthesized once."""
    config = copy.deepcopy(default_config)
    for path, value in CHANGES:
        _set(config, path, value)
    folder = tmp_path_factory.mktemp("changed")
    (folder / "instance.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return synthesize(str(folder / "instance.yaml"), folder / "cdk.out")


def _json_object(value):
    """Helm values and other documents CDK embeds as JSON strings, parsed; else the value."""
    if isinstance(value, str) and value.startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _leaf_changes(before, after, path=""):
    """(path, old, new) of every scalar that differs between two JSON trees."""
    before, after = _json_object(before), _json_object(after)
    if isinstance(before, dict) and isinstance(after, dict):
        for key in before.keys() | after.keys():
            yield from _leaf_changes(before.get(key), after.get(key), f"{path}/{key}")
    elif isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        for i, (b, a) in enumerate(zip(before, after)):
            yield from _leaf_changes(b, a, f"{path}[{i}]")
    elif before != after:
        yield path, before, after


@pytest.mark.parametrize("path, value", CHANGES, ids=[p for p, _ in CHANGES])
def test_each_change_is_a_real_change_that_reaches_the_templates(path, value, default_config, default_templates,
                                                                 changed_templates):
    from heliocloud.config import validate

    assert _get(validate(default_config), path) != value, f"{path}: {value!r} is already the default"
    changed = [(p, new) for p, _, new in _leaf_changes(default_templates, changed_templates)]
    assert any(new == value for _, new in changed), f"{path}={value!r} changed nothing in the templates: {changed[:10]}"


def test_the_default_instance_has_data_to_protect(default_templates):
    found = {body["Type"] for body in data_resources(default_templates).values()}
    assert "AWS::Cognito::UserPool" in found


def test_changed_settings_replace_no_data_resource(default_templates, changed_templates):
    assert replacement_problems(default_templates, changed_templates) == []


def test_data_resources_are_retained_on_delete_and_on_replacement(default_templates, changed_templates):
    assert retention_problems(default_templates) == []
    assert retention_problems(changed_templates) == []


def test_changes_are_found_inside_embedded_json_and_lists():
    before = {"S": {"Resources": {"Chart": {"Properties": {"Values": json.dumps({"hub": {"cull": {"timeout": 3600}}})}}}}}
    after = {"S": {"Resources": {"Chart": {"Properties": {"Values": json.dumps({"hub": {"cull": {"timeout": 7200}}})}}}}}
    assert [new for _, _, new in _leaf_changes(before, after)] == [7200]
    config = {"daskhub": {"profiles": [{"cpu": 1}]}}
    _set(config, "daskhub.profiles.0.cpu", 2)
    assert _get(config, "daskhub.profiles.0.cpu") == 2 and _get(config, "daskhub.missing.0") is None


def test_the_checks_catch_what_they_are_for():
    """A renamed bucket, a moved table key and a dropped pool are reported; a mutable change is not."""
    def app(bucket_name: str, hash_key: str, pool: bool, retention: int) -> dict:
        resources = {
            "Data": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": bucket_name},
                     "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"},
            "Ledger": {"Type": "AWS::DynamoDB::Table", "DeletionPolicy": "Delete",
                       "Properties": {"KeySchema": [{"AttributeName": hash_key, "KeyType": "HASH"}]}},
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": retention}},
        }
        if pool:
            resources["Users"] = {"Type": "AWS::Cognito::UserPool", "Properties": {"UserPoolName": "u"},
                                  "DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
        return {"S": {"Resources": resources}}

    base = app("data-a", "pk", True, 30)
    assert replacement_problems(base, app("data-a", "pk", True, 90)) == []
    problems = replacement_problems(base, app("data-b", "owner", False, 30))
    assert any("S/Data: BucketName changed" in p for p in problems)
    assert any("S/Ledger: KeySchema changed" in p for p in problems)
    assert any("S/Users (AWS::Cognito::UserPool): logical id gone" in p for p in problems)
    assert retention_problems(base) == [
        "S/Ledger (AWS::DynamoDB::Table): DeletionPolicy is 'Delete', must be 'Retain'",
        "S/Ledger (AWS::DynamoDB::Table): UpdateReplacePolicy is None, must be 'Retain'",
    ]
