"""`heliocloud portal prices`: refresh the portal's price table from the AWS Price List."""
from __future__ import annotations

import sys

import yaml
from rich.console import Console
from rich.progress import track

from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit


def register(sub) -> None:
    p = sub.add_parser("portal", help="portal administration (price table)")
    portal_sub = p.add_subparsers(dest="portal_command", required=True, metavar="ACTION")
    prices = portal_sub.add_parser("prices", help="print portal.instance_types with current on-demand prices "
                                                  "(needs AWS credentials; paste the output into instance.yaml)")
    add_config_option(prices)
    prices.add_argument("--region", action="append", dest="regions", metavar="REGION",
                        help="region to price (repeatable; default: every region already in the table)")
    prices.set_defaults(func=run_prices)


def run_prices(args) -> int:
    from hc_portal import pricing

    from heliocloud import aws

    config = load_or_exit(args.config)
    types = config.portal["instance_types"]
    regions = args.regions or sorted({r for t in types for r in t["prices"]})
    client = aws.client("pricing", region=pricing.PRICING_REGION)
    console = Console(stderr=True)
    pairs = [(t["type"], r) for t in types for r in regions]
    found = {pair: pricing.lookup(client, *pair) for pair in track(pairs, description="querying the Price List", console=console)}
    missing = [f"{t} in {r}" for (t, r), usd in found.items() if usd is None]
    if missing:
        console.print(f"[yellow]no on-demand Linux price for: {', '.join(missing)} (kept as configured)")
    yaml.safe_dump({"instance_types": pricing.refreshed(types, found)}, sys.stdout, sort_keys=False,
                   default_flow_style=None, width=120)
    return 0
