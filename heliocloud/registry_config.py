"""The registry section of instance.yaml → indexer rules, plus the checks a schema cannot make.

Imported by the Registry stack, the `registry` CLI command and the sandbox part, so the semantic
check below runs wherever the config is loaded for the registry.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Iterable

from hc_registry.rules import STOP_GROUP_PREFIX, BucketRules, Parsed, load_rules, rules_document

from heliocloud.config import InstanceConfig, semantic_check

# A moment with every field distinct, to check that a time format keeps them all apart.
_PROBE = datetime(2019, 11, 23, 14, 37, 51, 654000)


def registry_rules(config: InstanceConfig) -> dict:
    """The JSON document the indexer reads (``hc_registry.rules.load_rules``)."""
    return rules_document(config.registry, region=config.region, contact=config.instance["contact"])


def bucket_rules(config: InstanceConfig, region: str | None = None) -> dict[str, BucketRules]:
    """{bucket: rules}; ``region`` fills in where the instance does not pin one."""
    document = registry_rules(config)
    document["region"] = config.region or region
    return load_rules(document)


@semantic_check
def _registry_checks(cfg: dict) -> Iterable[tuple[list[Any], str]]:
    buckets = cfg["registry"]["buckets"]
    seen_buckets: set[str] = set()
    for b, bucket in enumerate(buckets):
        where = ["registry", "buckets", b]
        if bucket["name"] in seen_buckets:
            yield where + ["name"], f"bucket {bucket['name']!r} is listed twice"
        seen_buckets.add(bucket["name"])
        seen_ids: set[str] = set()
        for d, dataset in enumerate(bucket["datasets"]):
            path = where + ["datasets", d]
            if dataset["id"] in seen_ids:
                yield path + ["id"], f"dataset id {dataset['id']!r} is used twice in this bucket"
            seen_ids.add(dataset["id"])
            yield from _dataset_checks(path, dataset)
        yield from _check_examples(where, bucket)


def _dataset_checks(path: list[Any], dataset: dict) -> Iterable[tuple[list[Any], str]]:
    try:
        pattern = re.compile(dataset["pattern"])
    except re.error:
        return  # the schema's regex format check already reported it
    groups = list(pattern.groupindex)
    start_groups = [g for g in groups if not g.startswith(STOP_GROUP_PREFIX)]
    stop_groups = [g for g in groups if g.startswith(STOP_GROUP_PREFIX)]
    stop = dataset.get("stop") or {}
    if not start_groups:
        yield path + ["pattern"], "needs at least one named group for the start time, e.g. (?P<start>[0-9]{8})"
    if stop.get("time_format") and not stop_groups:
        yield path + ["stop", "time_format"], "the pattern has no named group beginning with 'stop'"
    if stop_groups and not stop.get("time_format"):
        yield path + ["pattern"], (f"groups {', '.join(stop_groups)} give a stop time: set stop.time_format "
                                   "(or rename them)")
    for fmt_path, fmt in ((path + ["time_format"], dataset["time_format"]),
                          (path + ["stop", "time_format"], stop.get("time_format"))):
        if fmt:
            problem = _time_format_problem(fmt)
            if problem:
                yield fmt_path, problem


def _time_format_problem(fmt: str) -> str | None:
    if "%Y" not in fmt and "%y" not in fmt:
        return f"{fmt!r} has no year (%Y): the index is partitioned by year"
    try:
        text = _PROBE.strftime(fmt)
        back = datetime.strptime(text, fmt)
    except ValueError as exc:
        return f"{fmt!r} is not a usable strptime format: {exc}"
    if back.year != _PROBE.year:
        return f"{fmt!r} does not read back the time it writes"
    return None


def _check_examples(where: list[Any], bucket: dict) -> Iterable[tuple[list[Any], str]]:
    """Each dataset's ``example`` key must become a row of that very dataset."""
    try:
        rules = BucketRules.from_config(bucket)
    except re.error:
        return
    for d, dataset in enumerate(bucket["datasets"]):
        example = dataset.get("example")
        if not example:
            continue
        result = rules.classify(example, 0)
        if not isinstance(result, Parsed):
            reason = result.reason if result is not None else "it is an index object"
            yield where + ["datasets", d, "example"], f"{example!r} is rejected: {reason}"
        elif result.dataset != dataset["id"]:
            yield where + ["datasets", d, "example"], f"{example!r} is claimed by earlier dataset {result.dataset!r}"


def state_table_name(config: InstanceConfig) -> str:
    """The indexer's DynamoDB table (a fixed name, so the CLI finds it without a stack lookup)."""
    return f"{config.name}-registry-state"


def queue_name(config: InstanceConfig) -> str:
    return f"{config.name}-registry-events"
