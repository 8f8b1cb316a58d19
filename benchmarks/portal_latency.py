"""Portal API latency in the sandbox (p50/p95 per route, through the local adapter with JWT
verification, the handlers and moto) and Cost Explorer calls per day for N users.

    .venv/bin/python benchmarks/portal_latency.py --users 20 --views 10

Each simulated user signs in, creates a key, launches a VM and opens the dashboard --views
times (me, catalog, instances, keys, costs); Cost Explorer calls are counted on every boto3
client in the process, then the nightly reconcile runs once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

import boto3
import requests
from rich.console import Console
from rich.progress import track
from rich.table import Table

from heliocloud.config import load
from heliocloud.sandbox import Sandbox
from heliocloud.sandbox import auth as auth_part
from heliocloud.sandbox import portal as portal_part
from heliocloud.sandbox.moto import MotoServer

REPO = Path(__file__).resolve().parents[1]
DASHBOARD = [("GET", "/api/me"), ("GET", "/api/catalog"), ("GET", "/api/instances"), ("GET", "/api/keys"), ("GET", "/api/costs")]
OLD_PORTAL_CE_CALLS_PER_VIEW = 2  # the seed HelioCloud portal queries Cost Explorer twice per page view


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--views", type=int, default=10, help="dashboard views per user")
    args = parser.parse_args()
    console = Console()

    ce_calls = {"n": 0}

    def count_ce(model, **_):
        if model.service_model.service_name == "ce":
            ce_calls["n"] += 1

    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", count_ce)

    with tempfile.TemporaryDirectory() as tmp, MotoServer() as moto:
        from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS

        os.environ.update({**SANDBOX_CREDENTIALS, "AWS_ENDPOINT_URL": moto.url, "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1"})
        sandbox = Sandbox(config=load(REPO / "instance.yaml"), state_dir=Path(tmp), aws_url=moto.url)
        auth_part.start(sandbox)
        portal_part.start(sandbox)
        ce_at_start = ce_calls["n"]  # the sandbox's own first reconcile
        url = sandbox.endpoints["portal"]
        cognito = sandbox.client("cognito-idp")
        pool = sandbox.endpoints["cognito"]["user_pool_id"]
        tokens = []
        for n in track(range(args.users), description="creating users", console=console):
            email, password = f"user{n}@heliocloud.test", "Bench-Password-2026!"
            cognito.admin_create_user(UserPoolId=pool, Username=email, MessageAction="SUPPRESS",
                                      UserAttributes=[{"Name": "email", "Value": email}])
            cognito.admin_set_user_password(UserPoolId=pool, Username=email, Password=password, Permanent=True)
            tokens.append(requests.post(f"{url}/auth/signin", json={"email": email, "password": password}, timeout=30).json()["id_token"])

        latencies: dict[str, list[float]] = defaultdict(list)
        session = requests.Session()

        def call(token, method, path, body=None):
            started = time.perf_counter()
            response = session.request(method, f"{url}{path}", json=body, timeout=30,
                                       headers={"Authorization": f"Bearer {token}"})
            latencies[f"{method} {path if '/i-' not in path else path.rsplit('/', 2)[0] + '/{id}/' + path.rsplit('/', 1)[1]}"].append(
                (time.perf_counter() - started) * 1000)
            assert response.status_code < 300, (path, response.status_code, response.text)
            return response.json()

        for n, token in enumerate(track(tokens, description="users at work", console=console)):
            call(token, "POST", "/api/keys", {"name": "laptop"})
            vm = call(token, "POST", "/api/instances", {"name": f"vm{n}", "image": "Amazon Linux 2023",
                                                        "instance_type": "t3.medium", "key_name": "laptop"})["instance"]
            for _ in range(args.views):
                for method, path in DASHBOARD:
                    call(token, method, path)
            call(token, "POST", f"/api/instances/{vm['id']}/stop")
        dashboard_ce = ce_calls["n"] - ce_at_start

        from hc_portal import reconcile
        from hc_portal.settings import current
        from hc_portal.store import Store

        before = ce_calls["n"]
        reconcile.reconcile(sandbox.client("ce"), Store(current()), current(), date.today())
        nightly_ce = ce_calls["n"] - before
        sandbox.stop()

    table = Table(title=f"Portal API latency in the sandbox ({args.users} users × {args.views} dashboard views)")
    for column in ("route", "requests", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column, justify="right" if column != "route" else "left")
    for route, values in sorted(latencies.items()):
        table.add_row(route, str(len(values)), f"{statistics.median(values):.1f}", f"{percentile(values, 0.95):.1f}",
                      f"{max(values):.1f}")
    every = [v for values in latencies.values() for v in values]
    table.add_row("[bold]all", str(len(every)), f"{statistics.median(every):.1f}", f"{percentile(every, 0.95):.1f}", f"{max(every):.1f}")
    console.print(table)

    views = args.users * args.views
    ce = Table(title="Cost Explorer calls per day")
    for column in ("", "this portal", "seed portal (2 per page view)", "ratio"):
        ce.add_column(column)
    ours = dashboard_ce + nightly_ce
    seed = OLD_PORTAL_CE_CALLS_PER_VIEW * views
    ce.add_row(f"{args.users} users, {views} dashboard views", f"{ours} ({dashboard_ce} from views + {nightly_ce} nightly)",
               str(seed), f"1 : {seed / max(ours, 1):.0f}")
    console.print(ce)


if __name__ == "__main__":
    main()
