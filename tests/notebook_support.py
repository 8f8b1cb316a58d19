"""Running the example notebooks (docs/examples/*.ipynb) the way a HelioCloud kernel runs them:
in the researcher environment, configured by nothing but environment variables.

Two halves. The test side (the app's environment) builds the kernel's environment
(``kernel_env``), starts the runner and reads what it collected (``run_notebook``). The runner
(this file run by the researcher environment's Python: nbclient is installed only there)
executes the notebook with nbclient and saves the executed copy. Code that runs the notebooks
through other kernels (a JupyterHub's) reuses ``kernel_env``, ``collect_source`` and
``parse_collected``: append the collect cell, run the cells, parse its output.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
# heliocloud.sandbox.hub.RESEARCHER_ENV: this file also runs as the runner inside the researcher
# environment, which has no heliocloud to import it from (test_example_notebooks checks they agree).
RESEARCHER_ENV = REPO / ".venv-researcher"
RESEARCHER_PYTHON = RESEARCHER_ENV / "bin" / "python"
COLLECT_MARKER = "heliocloud-collected:"
CELL_TIMEOUT = 300


def kernel_env(*, aws_url: str | None, region: str, catalog_registry_url: str, gateway: dict,
               username: str = "researcher", credentials: dict[str, str] | None = None) -> dict[str, str]:
    """What a hub sets in a notebook server's environment for the notebooks to find everything.

    ``gateway`` is ``LocalGateway.client_settings()``: with ``auth: basic`` the user name and the
    gateway's password go into dask-gateway's config (``gateway.auth.kwargs``); with
    ``auth: jupyterhub`` the kernel's own ``JUPYTERHUB_API_TOKEN`` is used. ``aws_url`` None = real
    AWS (credentials from the machine's role)."""
    env = {"ROOT_CATALOG_REGISTRY_URL": catalog_registry_url, "AWS_DEFAULT_REGION": region, "AWS_REGION": region,
           "DASK_GATEWAY__ADDRESS": gateway["address"], "DASK_GATEWAY__PROXY_ADDRESS": gateway["proxy_address"],
           "DASK_GATEWAY__AUTH__TYPE": gateway["auth"], **(credentials or {})}
    if aws_url:
        env["AWS_ENDPOINT_URL"] = aws_url
    if gateway["auth"] == "basic":
        env["DASK_GATEWAY__AUTH__KWARGS__USERNAME"] = username
        env["DASK_GATEWAY__AUTH__KWARGS__PASSWORD"] = gateway["password"]
    return env


def collect_source(names: list[str]) -> str:
    """A cell that prints the named variables as one JSON line (appended after the notebook's own)."""
    return (f"import json as _json\nprint({COLLECT_MARKER!r} + _json.dumps("
            + "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}))")


def parse_collected(text: str) -> dict:
    """The variables a collect cell printed, from that cell's output text."""
    line = next(x for x in text.splitlines() if x.startswith(COLLECT_MARKER))
    return json.loads(line[len(COLLECT_MARKER):])


@dataclass
class NotebookRun:
    executed: Path      # the notebook with its outputs
    collected: dict     # the variables asked for
    seconds: float


def run_notebook(notebook: Path, *, env: dict[str, str], workdir: Path, collect: list[str] = (),
                 timeout: float = 900, python: Path = RESEARCHER_PYTHON) -> NotebookRun:
    """Execute ``notebook`` in a kernel of ``python``'s environment with only ``env`` (plus PATH,
    HOME, LANG) set, from ``workdir``; fail with the failing cell's traceback."""
    workdir.mkdir(parents=True, exist_ok=True)
    executed = workdir / notebook.name
    base = {"PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8")}
    began = time.monotonic()
    result = subprocess.run([str(python), __file__, str(notebook), str(executed), *collect], env={**base, **env},
                            check=False, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - began
    if result.returncode:
        raise AssertionError(f"{notebook.name} failed after {seconds:.0f} s:\n"
                             f"{result.stdout[-6000:]}{result.stderr[-3000:]}")
    collected = {}
    if collect:
        outputs = json.loads(executed.read_text())["cells"][-1]["outputs"]
        # nbformat stores multi-line text as a list of lines
        text = "".join("".join(o["text"]) for o in outputs if o["output_type"] == "stream")
        collected = parse_collected(text)
    return NotebookRun(executed, collected, seconds)


def _execute(notebook: Path, executed: Path, collect: list[str]) -> int:
    """The runner: execute every cell (and the collect cell), save the executed notebook."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    if collect:
        nb.cells.append(nbformat.v4.new_code_cell(collect_source(collect)))
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": os.getcwd()}})
    try:
        client.execute()
    except CellExecutionError as exc:
        print(exc)
        return 1
    finally:
        nbformat.write(nb, executed)
    return 0


if __name__ == "__main__":  # the researcher environment: python notebook_support.py NOTEBOOK EXECUTED [NAME...]
    sys.exit(_execute(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
