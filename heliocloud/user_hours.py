"""The marginal cost of one busy user-hour: the node a notebook profile (or a node pool) needs.

Works on any list of (profile, instance type) pairs; ``profiles_from_config`` finds them in a
config section whatever its layout.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

from heliocloud.prices import Prices


@dataclass(frozen=True)
class Profile:
    """Where one busy user's work runs: a notebook profile, or a node pool."""

    name: str
    instance_type: str
    spot: bool = False
    cpu: float | None = None
    memory_gib: float | None = None


@dataclass(frozen=True)
class UserHour:
    profile: str
    instance_type: str
    capacity: str
    node_hour: float | None  # the whole node (worst case: the user alone on it)
    share_hour: float | None  # the user's share of the node by CPU/memory guarantee, if known
    assumption: str


def user_hour_costs(profiles: Iterable[Profile], prices: Prices, *, public_ip: bool = False,
                    disk_gib: int | None = None, disk_type: str | None = None) -> list[UserHour]:
    """Marginal cost of one busy user-hour on each profile: the node it needs (plus its root
    volume and public address) and, when the profile states CPU/memory, the user's share."""
    eks = prices["eks"]
    disk_gib = disk_gib if disk_gib is not None else eks["default_node_disk_gib"]
    disk_type = disk_type or eks["default_node_disk_type"]
    extras = disk_gib * prices.ebs_gb_month(disk_type) / prices.hours_per_month
    if public_ip:
        extras += prices["network"]["public_ipv4_hour"]
    out = []
    for profile in profiles:
        hourly = prices.instance_hour(profile.instance_type, spot=profile.spot)
        capacity = "spot" if profile.spot else "on-demand"
        if hourly is None:
            out.append(UserHour(profile.name, profile.instance_type, capacity, None, None,
                                "no price for this instance type in prices.yaml"))
            continue
        node = hourly + extras
        spec = prices.instance(profile.instance_type)
        fractions = [profile.cpu / spec["vcpu"] if profile.cpu else 0.0,
                     profile.memory_gib / spec["memory_gib"] if profile.memory_gib else 0.0]
        share = node * min(1.0, max(fractions)) if any(fractions) else None
        parts = [f"{profile.instance_type} {capacity} ${hourly:.4f}/h", f"{disk_gib} GiB {disk_type}"]
        if public_ip:
            parts.append("public IPv4")
        out.append(UserHour(profile.name, profile.instance_type, capacity, node, share, " + ".join(parts)))
    return out


_TYPE_KEYS = ("instance_type", "instance_types", "node_type", "machine_type", "instanceType", "instanceTypes")
_NAME_KEYS = ("name", "slug", "display_name", "id", "title")
_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")


def _profile_from(name: str, entry: dict) -> Profile | None:
    raw = next((entry[k] for k in _TYPE_KEYS if k in entry), None)
    instance_type = raw[0] if isinstance(raw, list) and raw else raw
    if not isinstance(instance_type, str) or not _INSTANCE_TYPE.match(instance_type):
        return None
    capacity = str(entry.get("capacity") or entry.get("capacity_type") or "").lower()
    spot = bool(entry.get("spot")) or capacity == "spot"
    cpu = entry.get("cpu") or entry.get("cpu_guarantee") or entry.get("cores")
    memory = entry.get("memory_gib") or entry.get("memory_gb") or entry.get("mem_guarantee_gb") or entry.get("memory")
    return Profile(name=name, instance_type=instance_type, spot=spot,
                   cpu=float(cpu) if isinstance(cpu, (int, float)) else None,
                   memory_gib=float(memory) if isinstance(memory, (int, float)) else None)


def profiles_from_config(section: Any, path: str = "") -> list[Profile]:
    """Every entry of a config section (e.g. ``config.daskhub``) that names an instance type:
    list items with a name key, or mapping entries keyed by name. Tolerant of the layout, so new
    keys need no change here."""
    found: list[Profile] = []
    if isinstance(section, dict):
        for key, value in section.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(value, dict) and (profile := _profile_from(here, value)):
                found.append(profile)
            else:
                found.extend(profiles_from_config(value, here))
    elif isinstance(section, list):
        for i, value in enumerate(section):
            here = f"{path}[{i}]"
            if isinstance(value, dict):
                name = next((value[k] for k in _NAME_KEYS if isinstance(value.get(k), str)), here)
                if profile := _profile_from(f"{path}: {name}" if path else name, value):
                    found.append(profile)
                    continue
            found.extend(profiles_from_config(value, here))
    return found
