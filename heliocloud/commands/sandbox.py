"""`heliocloud sandbox`: run the configured instance on loopback until Ctrl-C."""
from __future__ import annotations

from pathlib import Path

from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit


def register(sub) -> None:
    p = sub.add_parser("sandbox", help="run the instance locally (moto as AWS) until Ctrl-C")
    add_config_option(p)
    p.add_argument("--state-dir", type=Path, default=Path(".sandbox"), help="logs and endpoints.json (default .sandbox)")
    p.add_argument("--port", type=int, default=0, help="port of the sandbox's AWS endpoint (default: a free one)")
    p.add_argument("--quick-cull", action="store_true",
                   help="cull idle notebooks after a minute instead of daskhub.culling.idle_minutes (to watch it work)")
    p.add_argument("--aia-samples", type=int, default=48, metavar="N",
                   help="sample SDO AIA images to seed for the example notebooks (default 48)")
    p.set_defaults(func=run)


def run(args) -> int:
    from heliocloud.sandbox.daskhub import QUICK_CULL
    from heliocloud.sandbox.run import run as run_sandbox

    run_sandbox(load_or_exit(args.config), args.state_dir, port=args.port,
                options={"samples": {"aia_files": args.aia_samples},
                         **({"cull": QUICK_CULL} if args.quick_cull else {})})
    return 0
