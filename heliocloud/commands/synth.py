"""`heliocloud synth`: synthesize the CDK app offline and summarise stacks and resources."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from heliocloud.commands import add_config_option
from heliocloud.config import load_or_exit

REPO = Path(__file__).resolve().parents[2]


def register(sub) -> None:
    p = sub.add_parser("synth", help="synthesize CloudFormation (offline) and print a summary")
    add_config_option(p)
    p.add_argument("--out", type=Path, default=REPO / "cdk.out", help="cloud assembly folder (default cdk.out)")
    p.set_defaults(func=run)


def synthesize(config_path: str | None, out: Path) -> dict[str, dict]:
    """Run app.py into ``out`` (same as `cdk synth`) and return {stack name: template}."""
    env = {**os.environ, "CDK_OUTDIR": str(out), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    if config_path:
        env["HELIOCLOUD_CONFIG"] = str(Path(config_path).resolve())
    result = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr)
        raise SystemExit(result.returncode)
    return read_templates(out)


def read_templates(out: Path) -> dict[str, dict]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {
        name: json.loads((out / art["properties"]["templateFile"]).read_text())
        for name, art in manifest["artifacts"].items()
        if art["type"] == "aws:cloudformation:stack"
    }


def run(args) -> int:
    load_or_exit(args.config)  # fail fast, with line numbers, before anything runs
    console = Console()
    with console.status("synthesizing (offline)"):
        templates = synthesize(args.config, args.out)
    table = Table(title=f"CloudFormation stacks in {args.out}")
    table.add_column("stack")
    table.add_column("resources", justify="right")
    table.add_column("main resource types")
    for name, template in templates.items():
        types = Counter(r["Type"].removeprefix("AWS::") for r in template.get("Resources", {}).values())
        top = ", ".join(f"{t} ×{n}" if n > 1 else t for t, n in types.most_common(6))
        table.add_row(name, str(sum(types.values())), top)
    console.print(table)
    console.print("cdk-nag AwsSolutions: no unacknowledged findings (synth fails otherwise).")
    return 0
