"""`heliocloud sandbox`: start every enabled part on loopback, write endpoints.json, wait."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from rich.console import Console
from rich.table import Table

from heliocloud.config import InstanceConfig
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import auth as auth_part
from heliocloud.sandbox import catalog_registry as catalog_registry_part
from heliocloud.sandbox import daskhub as daskhub_part
from heliocloud.sandbox import portal as portal_part
from heliocloud.sandbox import registry as registry_part
from heliocloud.sandbox import samples as samples_part
from heliocloud.sandbox.moto import MotoServer

# (component or None for always-on, start function), in start order.
PARTS = [
    (None, auth_part.start),
    ("registry", registry_part.start),
    ("registry", catalog_registry_part.start),
    # The example notebooks' data, indexed before anyone signs in.
    ("registry", samples_part.seed),
    ("daskhub", daskhub_part.start),
    ("portal", portal_part.start),
]


def run(config: InstanceConfig, state_dir: Path, *, port: int = 0, console: Console | None = None,
        options: dict | None = None) -> None:
    """``options``: per-part settings of this run (``cull``: the hub's cull.* overrides)."""
    console = console or Console(stderr=True)
    # Absolute, because parts start servers in sub-folders of it (their own working directory).
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / "endpoints.json").unlink(missing_ok=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())

    moto_log = open(state_dir / "moto.log", "ab")
    moto = MotoServer(port, log=moto_log)
    region = config.region or "us-east-1"
    sandbox = None
    try:
        with console.status("starting moto server (the sandbox's AWS)"):
            moto.start()
        sandbox = Sandbox(config=config, state_dir=state_dir, aws_url=moto.url, region=region, options=dict(options or {}))
        # The Lambda handlers run in this process, exactly as deployed: boto3 finds moto through
        # the standard environment variables.
        os.environ.update(sandbox.env)
        sandbox.endpoints.update({"s3": moto.url, "aws": moto.url, "region": region, "hub": None, "portal": None,
                                  "gateway": None})
        for component, start in PARTS:
            if component is None or config.enabled(component):
                with console.status(f"starting {start.__module__.rsplit('.', 1)[-1]}"):
                    start(sandbox)
        path = sandbox.write_endpoints()
        console.print(_summary(sandbox.endpoints, path))
        console.print("[bold green]HelioCloud sandbox is up.[/] Press Ctrl-C to stop.")
        done.wait()
    finally:
        console.print("stopping sandbox ...")
        if sandbox is not None:
            sandbox.stop()
        moto.stop()
        moto_log.close()
        console.print("sandbox stopped; every process it started has exited.")


def _summary(endpoints: dict, path: Path) -> Table:
    table = Table(title=f"HelioCloud sandbox endpoints ({path})")
    table.add_column("what")
    table.add_column("where")
    hub = endpoints.get("hub") or {}
    table.add_row("hub (start here)", hub.get("url") or "-")
    for key in ("portal", "gateway", "s3"):
        table.add_row(key, str(endpoints.get(key) or "-"))
    for name, user in endpoints.get("users", {}).items():
        table.add_row(f"user {name}", f"{user['email']} / {user['password']}")
    return table
