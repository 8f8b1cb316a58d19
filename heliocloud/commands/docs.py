"""`heliocloud docs`: regenerate (or check) the configuration reference from the schema."""
from __future__ import annotations

import sys
from pathlib import Path

from heliocloud import schema_docs

REPO = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("docs", help=f"write {schema_docs.REFERENCE_PATH} from the config schema")
    p.add_argument("--check", action="store_true", help="only check that the page is up to date (exit 1 if not)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.check:
        if schema_docs.is_current(REPO):
            print(f"{schema_docs.REFERENCE_PATH} is up to date")
            return 0
        print(f"{schema_docs.REFERENCE_PATH} is out of date: run `{schema_docs.REGENERATE}`", file=sys.stderr)
        return 1
    print(f"wrote {schema_docs.write(REPO).relative_to(REPO)}")
    return 0
