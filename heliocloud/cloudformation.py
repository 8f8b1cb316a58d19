"""Synthesized CloudFormation templates of an app as one searchable whole: resources, the
cross-stack references CDK writes, and nested stacks."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class Resource:
    stack: str
    logical_id: str
    type: str
    props: dict

    @property
    def name(self) -> str:
        return f"{self.stack}/{self.logical_id}"


class TemplateIndex:
    """All templates of an app, with the cross-references CDK writes (Ref, GetAtt, and
    Fn::ImportValue of another stack's export) resolved back to resources."""

    def __init__(self, templates: dict[str, dict]):
        self.templates = templates
        self.exports: dict[str, tuple[str, Any]] = {}
        for stack, template in templates.items():
            for output in (template.get("Outputs") or {}).values():
                name = (output.get("Export") or {}).get("Name")
                if isinstance(name, str):
                    self.exports[name] = (stack, output.get("Value"))

    def resources(self) -> Iterator[Resource]:
        for stack, template in self.templates.items():
            for logical_id, body in (template.get("Resources") or {}).items():
                yield Resource(stack, logical_id, body.get("Type", "?"), body.get("Properties") or {})

    def resolve(self, stack: str, value: Any) -> Resource | None:
        """The resource a property value points at, or None (a literal, a parameter, ...)."""
        if not isinstance(value, dict) or len(value) != 1:
            return None
        (fn, arg), = value.items()
        if fn == "Ref" and isinstance(arg, str):
            target = arg
        elif fn == "Fn::GetAtt":
            target = arg[0] if isinstance(arg, list) else str(arg).split(".")[0]
        elif fn == "Fn::ImportValue" and isinstance(arg, str) and arg in self.exports:
            return self.resolve(*self.exports[arg])
        else:
            return None
        body = (self.templates[stack].get("Resources") or {}).get(target)
        return Resource(stack, target, body["Type"], body.get("Properties") or {}) if body else None

    def is_public_subnet(self, stack: str, subnet: Any) -> bool | None:
        """True/False when the subnet is in the templates, None when it is not (imported)."""
        resource = self.resolve(stack, subnet)
        if resource is None or resource.type != "AWS::EC2::Subnet":
            return None
        return resource.props.get("MapPublicIpOnLaunch") is True

    def public_subnet_count(self) -> int:
        return sum(1 for r in self.resources() if r.type == "AWS::EC2::Subnet" and r.props.get("MapPublicIpOnLaunch") is True)


def with_nested_stacks(templates: dict[str, dict], cdk_out: Path | None) -> dict[str, dict]:
    """Add the templates of nested stacks (``AWS::CloudFormation::Stack``, e.g. the providers
    aws_eks creates) as ``<parent>/<logical id>``, so their resources are priced too. The file is
    found through the asset hash in the stack's TemplateURL (``*.assets.json``), or through the
    ``aws:asset:path`` metadata the CDK CLI adds."""
    if cdk_out is None:
        return dict(templates)
    by_hash = {}
    for manifest in cdk_out.glob("*.assets.json"):
        for asset_hash, spec in (json.loads(manifest.read_text()).get("files") or {}).items():
            if str(spec.get("source", {}).get("path", "")).endswith(".template.json"):
                by_hash[asset_hash] = spec["source"]["path"]
    out = dict(templates)
    for stack, template in templates.items():
        for logical_id, body in (template.get("Resources") or {}).items():
            if body.get("Type") != "AWS::CloudFormation::Stack":
                continue
            url = json.dumps((body.get("Properties") or {}).get("TemplateURL"))
            path = (body.get("Metadata") or {}).get("aws:asset:path") or \
                next((p for h, p in by_hash.items() if f"/{h}.json" in url), None)
            if path and (cdk_out / path).is_file():
                out[f"{stack}/{logical_id}"] = json.loads((cdk_out / path).read_text())
    return out
