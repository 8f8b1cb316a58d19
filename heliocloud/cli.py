"""The `heliocloud` command line. Each command lives in its own module with a ``register``."""
from __future__ import annotations

import argparse
import sys

from heliocloud.commands import cost, docs, doctor, portal, registry, sandbox, synth, users, validate

# In help order.
COMMANDS = [validate, synth, sandbox, users, registry, portal, doctor, cost, docs]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="heliocloud", description="Deploy and run a HelioCloud instance.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
