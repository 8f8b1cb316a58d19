"""The configuration reference (docs/reference/config.md), generated from the JSON Schema.

Generic over the schema: every property of every section, nested objects and arrays of objects
included, gets a heading (a stable anchor), its type, default, allowed values or bounds, and its
description, so a key added to any ``*.schema.yaml`` appears here on the next ``heliocloud docs``.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterator

from heliocloud.config import schema as instance_schema

REFERENCE_PATH = Path("docs") / "reference" / "config.md"
REGENERATE = "heliocloud docs"

_HEADER = f"""# Configuration reference

Every key of `instance.yaml`, generated from its JSON Schema (`heliocloud/schema/*.schema.yaml`)
by `{REGENERATE}`: edit the schema, not this page. Unknown keys are errors;
`heliocloud validate FILE` checks a file and names the line of each problem.

Paths are written as in validation errors: `section.key`, and `list[].key` for the keys of each
item of a list.
"""


def _escape(text: str) -> str:
    """Escape HTML-looking text outside code spans (`<name>` would vanish as a tag)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _code(value: Any) -> str:
    text = value if isinstance(value, str) and value else json.dumps(value)
    fence = "``" if "`" in text else "`"
    return f"{fence}{text}{fence}"


def _types(node: dict) -> list[str]:
    kind = node.get("type")
    if kind is None:
        return ["any"] if "enum" not in node and "const" not in node else []
    return kind if isinstance(kind, list) else [kind]


def type_of(node: dict) -> str:
    """A human type: ``string``, ``integer or null``, ``list of object``, ``map of string``."""
    names = []
    for kind in _types(node):
        if kind == "array":
            items = node.get("items") or {}
            names.append(f"list of {type_of(items)}" if items else "list")
        elif kind == "object" and not node.get("properties") and isinstance(node.get("additionalProperties"), dict):
            names.append(f"map of {type_of(node['additionalProperties'])}")
        else:
            names.append(kind)
    if not names and "enum" in node:
        names = sorted({type(v).__name__.replace("str", "string").replace("NoneType", "null") for v in node["enum"]})
    return " or ".join(names)


def _bounds(low, high, unit: str = "") -> str | None:
    """``3 to 9 characters``, ``at least 3``, ``at most 9``, or None without bounds."""
    if low is not None and high is not None:
        return f"{low} to {high}{unit}"
    if low is not None:
        return f"at least {low}{unit}"
    if high is not None:
        return f"at most {high}{unit}"
    return None


def constraints(node: dict) -> list[str]:
    """Allowed values and bounds, each as a short phrase."""
    out = []
    if "enum" in node:
        out.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    if "const" in node:
        out.append(f"exactly {_code(node['const'])}")
    if bounds := _bounds(node.get("minimum"), node.get("maximum")):
        out.append(bounds)
    for key, phrase in (("exclusiveMinimum", "more than"), ("exclusiveMaximum", "less than")):
        if key in node:
            out.append(f"{phrase} {node[key]}")
    low, high = node.get("minLength"), node.get("maxLength")
    if low == 1 and high is None:
        out.append("not empty")
    elif bounds := _bounds(low, high, " characters"):
        out.append(bounds)
    if "minItems" in node or "maxItems" in node:
        out.append(f"{node.get('minItems', 0)} to {node.get('maxItems', 'any number of')} items")
    if node.get("uniqueItems"):
        out.append("no duplicates")
    if "pattern" in node:
        out.append(f"matches {_code(node['pattern'])}")
    if "format" in node:
        out.append(f"format {node['format']}")
    if isinstance(node.get("not"), dict) and "const" in node["not"]:
        out.append(f"not {_code(node['not']['const'])}")
    if isinstance(node.get("propertyNames"), dict) and "pattern" in node["propertyNames"]:
        out.append(f"keys match {_code(node['propertyNames']['pattern'])}")
    items = node.get("items")
    if isinstance(items, dict) and not items.get("properties"):
        out.extend(f"each item: {c}" for c in constraints(items))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        out.extend(f"each value: {c}" for c in constraints(extra))
    return out


def _default(node: dict) -> str | None:
    if "default" not in node:
        return None
    value = node["default"]
    if value is None:
        return "unset (`null`)"
    if value == {} and node.get("properties"):
        return "each key's default"
    return _code(value)


def _children(node: dict) -> tuple[dict, set[str], str]:
    """(properties, required keys, path suffix) of an object, or of the objects of a list."""
    if node.get("properties"):
        return node["properties"], set(node.get("required", [])), ""
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        return items["properties"], set(items.get("required", [])), "[]"
    return {}, set(), ""


def entries(node: dict, path: str = "", required: bool = False) -> Iterator[tuple[str, dict, bool]]:
    """(dotted path, schema node, required) for every key under ``node``, depth first."""
    if path:
        yield path, node, required
    props, needed, suffix = _children(node)
    for key, sub in props.items():
        yield from entries(sub, f"{path}{suffix}.{key}" if path else key, key in needed)


def render(root: dict | None = None) -> str:
    """The whole reference page as Markdown."""
    root = root or instance_schema()
    lines = [_HEADER]
    for path, node, required in entries(root):
        depth = path.count(".")
        lines.append(f"{'#' * min(2 + depth, 6)} `{path}`\n")
        facts = [f"*{type_of(node)}*"]
        if required:
            facts.append("**required**")
        default = _default(node)
        if default is not None:
            facts.append(f"default: {default}")
        facts.extend(constraints(node))
        lines.append(" · ".join(facts) + "\n")
        description = (node.get("description") or "").strip()
        if description:
            lines.append(_escape(re.sub(r"[ \t]+\n", "\n", description)) + "\n")
    return "\n".join(lines).rstrip() + "\n"


def write(repo: Path) -> Path:
    target = repo / REFERENCE_PATH
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    return target


def is_current(repo: Path) -> bool:
    target = repo / REFERENCE_PATH
    return target.is_file() and target.read_text() == render()
