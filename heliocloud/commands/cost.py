"""`heliocloud cost`: what the instance costs per month with no users, and per busy user-hour."""
from __future__ import annotations

import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from heliocloud import cloudformation, cost, prices as price_list, user_hours
from heliocloud.commands import add_config_option
from heliocloud.commands.synth import read_templates, synthesize
from heliocloud.config import load_or_exit


def register(sub) -> None:
    p = sub.add_parser("cost", help="estimate the idle monthly cost and the cost of a busy user-hour")
    add_config_option(p)
    p.add_argument("--cdk-out", type=Path, metavar="DIR",
                   help="price this cloud assembly instead of synthesizing the config (e.g. cdk.out)")
    p.add_argument("--region", help="price list to use (default: instance.region, else us-east-1)")
    p.add_argument("--on", type=dt.date.fromisoformat, metavar="YYYY-MM-DD",
                   help="date to price at (Kubernetes support windows; default today)")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    config = load_or_exit(args.config)
    try:
        prices = price_list.load_prices(args.region or config.region)
    except price_list.PriceError as exc:
        print(f"heliocloud cost: {exc}", file=sys.stderr)
        return 2
    console = Console(stderr=args.json)
    if args.cdk_out:
        if not (args.cdk_out / "manifest.json").is_file():
            print(f"heliocloud cost: {args.cdk_out} is not a cloud assembly (no manifest.json)", file=sys.stderr)
            return 2
        templates = cloudformation.with_nested_stacks(read_templates(args.cdk_out), args.cdk_out)
    else:
        with tempfile.TemporaryDirectory(prefix="heliocloud-cost-") as out, console.status("synthesizing (offline)"):
            templates = cloudformation.with_nested_stacks(synthesize(args.config, Path(out)), Path(out))
    estimate = cost.estimate_idle(templates, prices, on=args.on)
    pools = cost.scalable_node_pools(templates, prices)
    public = any(p.public_ip for p in pools)
    profiles = user_hours.user_hour_costs(user_hours.notebook_profiles(config.daskhub), prices, public_ip=public)
    pool_hours = user_hours.user_hour_costs(
        [user_hours.Profile(p.name, p.instance_type, p.spot) for p in pools], prices, public_ip=public)
    if args.json:
        print(json.dumps({
            "instance": config.name, **estimate.to_dict(),
            "user_hour": [u.__dict__ for u in profiles], "node_hour": [u.__dict__ for u in pool_hours],
        }, indent=2))
        return 0
    _print(console, config.name, estimate, profiles, pool_hours)
    return 0


def _usd(amount: float | None, digits: int = 2) -> str:
    return "?" if amount is None else f"${amount:,.{digits}f}"


def _print(console: Console, name: str, estimate: cost.Estimate, profiles, pool_hours) -> None:
    table = Table(title=f"{name}: monthly cost with no users ({estimate.region} on-demand prices of {estimate.as_of}, "
                       f"priced on {estimate.on})", show_footer=True)
    table.add_column("category", footer="total")
    table.add_column("item (stack/resource)", ratio=2)
    table.add_column("qty", justify="right")
    table.add_column("price assumption", ratio=3)
    table.add_column("$/month", justify="right", footer=_usd(estimate.total))
    for item in sorted(estimate.items, key=lambda i: (-i.monthly, i.category, i.resource)):
        table.add_row(item.category, f"{item.what}\n[dim]{item.resource}[/dim]", f"{item.quantity:g}", item.assumption,
                      _usd(item.monthly))
    console.print(table)
    console.print("by category: " + ", ".join(f"{k} {_usd(v)}" for k, v in sorted(estimate.by_category().items(),
                                                                                   key=lambda kv: -kv[1])))
    if estimate.free:
        free = ", ".join(f"{t.removeprefix('AWS::')} ×{n}" for t, n in estimate.free.most_common())
        console.print(f"[dim]{sum(estimate.free.values())} more resources cost nothing while idle: {free}[/dim]")
    for warning in estimate.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print("[dim]Other regions differ; data transfer, storage growth and requests are usage, not idle cost.[/dim]")
    for title, rows in (("one busy user-hour, per notebook profile (config.daskhub)", profiles),
                        ("one more node-hour, per node pool that scales with use", pool_hours)):
        if not rows:
            continue
        hours = Table(title=f"Marginal cost of {title}")
        hours.add_column("profile", overflow="fold")
        hours.add_column("instance")
        hours.add_column("whole node $/h", justify="right")
        hours.add_column("user's share $/h", justify="right")
        hours.add_column("assumption")
        for row in rows:
            hours.add_row(row.profile, f"{row.instance_type} ({row.capacity})", _usd(row.node_hour, 4),
                          _usd(row.share_hour, 4) if row.share_hour is not None else "-", row.assumption)
        console.print(hours)
    if not profiles and not pool_hours:
        console.print("No notebook profiles in config.daskhub and no node pool that scales with use: "
                      "no per-user-hour cost to show.")
