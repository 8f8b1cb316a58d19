"""instance.yaml → validated, defaults-filled InstanceConfig.

The JSON Schema in ``heliocloud/schema/`` is the single source of truth: it documents every key,
supplies defaults and rejects unknown keys. Problems are reported one per line as
``FILE:LINE: dotted.path[0].key: message`` so an admin can jump straight to the bad line.
"""
from __future__ import annotations

import copy
import importlib
import difflib
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Callable, Iterable

import jsonschema
import yaml

SCHEMA_DIR = Path(__file__).parent / "schema"
SECTION_SCHEMAS = ("registry", "daskhub", "portal")
DEFAULT_CONFIG = "instance.yaml"
CONFIG_ENV = "HELIOCLOUD_CONFIG"


class ConfigError(Exception):
    """An invalid instance.yaml; ``problems`` holds one formatted line per problem."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@cache
def schema() -> dict:
    """The full instance schema: the top-level file with each section file merged in."""
    root = yaml.safe_load((SCHEMA_DIR / "instance.schema.yaml").read_text())
    for section in SECTION_SCHEMAS:
        root["properties"][section] = yaml.safe_load((SCHEMA_DIR / f"{section}.schema.yaml").read_text())
    return root


def _with_defaults(validator_class):
    """A validator that fills each property's ``default`` before validating it (jsonschema's
    documented recipe), so nested sections given as ``default: {}`` get their own defaults."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def dotted(path: Iterable[Any]) -> str:
    """``['registry', 'buckets', 0, 'name']`` → ``registry.buckets[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _line_of(node: yaml.Node | None, path: list[Any]) -> int | None:
    """1-based line of the YAML node at ``path`` (the deepest node that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == part), None)
            key = next((k for k, v in node.value if k.value == part), None)
            if match is None:
                return line
            node, line = match, key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _messages(error: jsonschema.ValidationError) -> list[tuple[list[Any], str]]:
    """Turn one schema error into (path, message) pairs worded for an admin."""
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in known]
        out = []
        for key in extras:
            hint = difflib.get_close_matches(str(key), known, n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else f" (allowed: {', '.join(known)})"
            out.append((path + [key], f"unknown key{tip}"))
        return out
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        name = missing.group(1) if missing else "?"
        return [(path + [name], "required key is missing")]
    if error.validator == "format" and error.validator_value == "regex":
        try:
            re.compile(error.instance)
        except re.error as exc:
            return [(path, f"not a valid regular expression: {exc}")]
    if error.validator == "pattern" and "description" in error.schema:
        return [(path, f"{error.instance!r} does not match {error.validator_value!r}")]
    return [(path, error.message)]


# Checks a JSON Schema cannot express. Each takes the defaults-filled config and yields
# (path, message). Component modules register theirs with @semantic_check; COMPONENT_CHECKS names
# those modules so that every entry point (CLI, app.py, sandbox) runs all of them.
COMPONENT_CHECKS = ("heliocloud.registry_config", "heliocloud.daskhub", "heliocloud.portal_config")
SemanticCheck = Callable[[dict], Iterable[tuple[list[Any], str]]]
SEMANTIC_CHECKS: list[SemanticCheck] = []


def semantic_check(fn: SemanticCheck) -> SemanticCheck:
    SEMANTIC_CHECKS.append(fn)
    return fn


@semantic_check
def _network_checks(cfg: dict) -> Iterable[tuple[list[Any], str]]:
    net, inst = cfg["network"], cfg["instance"]
    if net["nat_gateways"] > net["max_azs"]:
        yield ["network", "nat_gateways"], f"{net['nat_gateways']} NAT gateways but only {net['max_azs']} AZs"
    if net["vpc_id"] and not (inst["account"] and inst["region"]):
        yield ["network", "vpc_id"], "importing an existing VPC needs instance.account and instance.region"


def validate(data: Any, *, source: str = DEFAULT_CONFIG, root: yaml.Node | None = None) -> dict:
    """Validate parsed YAML, fill defaults, and return the config dict; raise ConfigError."""
    if data is None:
        data = {}
    data = copy.deepcopy(data)
    validator = _Validator(schema(), format_checker=jsonschema.FormatChecker())
    problems: list[tuple[list[Any], str]] = []
    for error in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        problems.extend(_messages(error))
    if not problems:
        for module in COMPONENT_CHECKS:
            importlib.import_module(module)  # registers its checks (imported late: they import us)
        for check in SEMANTIC_CHECKS:
            problems.extend(check(data))
    if problems:
        located = sorted(((_line_of(root, path) or 0, path, message) for path, message in problems),
                         key=lambda p: p[0])
        raise ConfigError([
            f"{source}:{line}: {dotted(path)}: {message}" if line else f"{source}: {dotted(path)}: {message}"
            for line, path, message in located
        ])
    return data


def load(path: str | os.PathLike | None = None) -> "InstanceConfig":
    """Read, validate and wrap a config file (default: $HELIOCLOUD_CONFIG or instance.yaml)."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}"]) from exc
    if data is not None and not isinstance(data, dict):
        raise ConfigError([f"{path}:1: (top level): must be a mapping of sections"])
    return InstanceConfig(validate(data, source=str(path), root=root), source=path)


@dataclass(frozen=True)
class InstanceConfig:
    """The validated configuration. Stacks read this object, never the YAML."""

    data: dict
    source: Path = Path(DEFAULT_CONFIG)

    @property
    def name(self) -> str:
        return self.data["instance"]["name"]

    @property
    def account(self) -> str | None:
        return self.data["instance"]["account"]

    @property
    def region(self) -> str | None:
        return self.data["instance"]["region"]

    @property
    def tags(self) -> dict[str, str]:
        return {"heliocloud:instance": self.name, **self.data["instance"]["tags"]}

    def enabled(self, component: str) -> bool:
        return bool(self.data["components"][component])

    def stack_name(self, part: str) -> str:
        return f"{self.name}-{part}"

    @property
    def instance(self) -> dict:
        return self.data["instance"]

    @property
    def network(self) -> dict:
        return self.data["network"]

    @property
    def auth(self) -> dict:
        return self.data["auth"]

    @property
    def registry(self) -> dict:
        return self.data["registry"]

    @property
    def daskhub(self) -> dict:
        return self.data["daskhub"]

    @property
    def portal(self) -> dict:
        return self.data["portal"]

    @property
    def domain_prefix(self) -> str:
        return self.auth["domain_prefix"] or f"{self.name}-heliocloud"


def load_or_exit(path: str | os.PathLike | None = None) -> InstanceConfig:
    """For app.py and the CLI: load the config, or print every problem and exit non-zero."""
    import sys

    try:
        return load(path)
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in the config; nothing was synthesized.", file=sys.stderr)
        raise SystemExit(2) from None
