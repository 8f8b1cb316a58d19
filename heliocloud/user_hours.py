"""The marginal cost of one busy user-hour: the node a notebook profile (or a node pool) needs.

Works on any list of (profile, instance type) pairs; ``notebook_profiles`` makes that list from
the Daskhub's notebook profiles.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from heliocloud.daskhub import profile_node_group
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


def notebook_profiles(daskhub: dict) -> list[Profile]:
    """Each notebook profile of ``config.daskhub`` on the node group it spawns on (the group's
    first instance type), with the CPU and memory it is guaranteed."""
    groups = daskhub["node_groups"]
    return [
        Profile(name=profile["name"], instance_type=groups[profile_node_group(profile)]["instance_types"][0],
                cpu=float(profile["cpu"]), memory_gib=float(profile["memory_gib"]))
        for profile in daskhub["profiles"]
    ]
