"""Validation of everything the API is sent: a clear 400 naming the field, or clean values."""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

from hc_portal.errors import ApiError, bad
from hc_portal.settings import Settings

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
SUB = re.compile(r"^[0-9A-Za-z-]{1,128}$")
NAME_RULE = "1-63 letters, digits, '.', '_' or '-', starting with a letter or digit"


@dataclass(frozen=True)
class LaunchRequest:
    name: str
    image: str
    instance_type: str
    volume_gb: int
    key_name: str | None


def json_body(event: dict) -> dict:
    raw = event.get("body")
    if raw is None or raw == "":
        return {}
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(raw).decode()
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "body: not valid base64 UTF-8", field="body") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc.msg})", field="body") from None
    if not isinstance(doc, dict):
        raise ApiError(400, "body: must be a JSON object", field="body")
    return doc


def _only(doc: dict, allowed: set[str]) -> None:
    for key in doc:
        if key not in allowed:
            raise bad(str(key), f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _name(doc: dict, field: str, *, required: bool = True) -> str | None:
    value = doc.get(field)
    if value is None:
        if required:
            raise bad(field, "required")
        return None
    if not isinstance(value, str) or not NAME.match(value):
        raise bad(field, NAME_RULE)
    return value


def launch_request(doc: dict, settings: Settings) -> LaunchRequest:
    _only(doc, {"name", "image", "instance_type", "volume_gb", "key_name"})
    name = _name(doc, "name")
    image = doc.get("image")
    if not isinstance(image, str) or settings.image(image) is None:
        allowed = ", ".join(i["name"] for i in settings.images)
        raise bad("image", f"must be one of the offered images ({allowed})")
    instance_type = doc.get("instance_type")
    if not isinstance(instance_type, str) or settings.hourly_price(instance_type) is None:
        allowed = ", ".join(t["type"] for t in settings.launchable_types())
        raise bad("instance_type", f"not in the allowed list for {settings.region} ({allowed})")
    bounds = settings.volume_gb
    volume = doc.get("volume_gb", bounds["default"])
    if isinstance(volume, bool) or not isinstance(volume, int) or not bounds["min"] <= volume <= bounds["max"]:
        raise bad("volume_gb", f"must be a whole number of GB from {bounds['min']} to {bounds['max']}")
    key_name = _name(doc, "key_name", required=False)
    return LaunchRequest(name=name, image=image, instance_type=instance_type, volume_gb=volume, key_name=key_name)


def key_request(doc: dict) -> str:
    _only(doc, {"name"})
    return _name(doc, "name")


def key_name(value: str | None) -> str:
    if not value or not NAME.match(value):
        raise bad("name", NAME_RULE)
    return value


def instance_id(value: str | None) -> str:
    if not value or not INSTANCE_ID.match(value):
        raise bad("id", "not an instance id (i-0123456789abcdef0)")
    return value


def budget_request(doc: dict) -> float | None:
    """Admin override: {"monthly_usd": number} sets it, {"monthly_usd": null} returns to the default."""
    _only(doc, {"monthly_usd"})
    if "monthly_usd" not in doc:
        raise bad("monthly_usd", "required (a number of USD, or null for the default)")
    value = doc["monthly_usd"]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1_000_000:
        raise bad("monthly_usd", "must be a number of USD from 0 to 1000000, or null")
    return float(value)


def user_sub(value: str | None) -> str:
    if not value or not SUB.match(value):
        raise bad("sub", "not a user id")
    return value
