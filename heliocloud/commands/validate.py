"""`heliocloud validate [FILE]`: check an instance.yaml; one line per problem, exit 2 if any."""
from __future__ import annotations

import sys

from heliocloud.config import ConfigError, load


def register(sub) -> None:
    p = sub.add_parser("validate", help="check an instance config against the schema")
    p.add_argument("file", nargs="?", default=None, help="config file (default: $HELIOCLOUD_CONFIG or instance.yaml)")
    p.set_defaults(func=run)


def run(args) -> int:
    try:
        config = load(args.file)
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 2
    parts = ["network", "auth"] + [c for c in ("registry", "daskhub", "portal") if config.enabled(c)]
    print(f"{config.source}: OK (instance '{config.name}': {', '.join(parts)})")
    return 0
