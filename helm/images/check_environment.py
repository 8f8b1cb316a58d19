"""Fail the image build if the environment is not the one requirements.txt promises.

Run by both Dockerfiles right after `pip install` (as the notebook user): every module the
HelioCloud tutorials import must import, the pinned packages must be installed at their pins,
and the commands the jupyterhub and dask-gateway charts start must be on PATH. `--gpu` also
checks that torch is the CUDA build (no GPU exists at build time, so not that one is usable).
"""
from __future__ import annotations

import argparse
import importlib
import re
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Import names of the contract (the distribution names are in requirements.txt).
MODULES = ["cloudcatalog", "astropy", "sunpy.map", "sunpy.net", "sunpy.timeseries", "cdflib", "s3fs",
           "xarray", "hapiclient", "pyspedas", "dask", "dask.dataframe", "dask.array", "distributed",
           "dask_gateway", "jupyterhub", "jupyterlab", "nbclient", "ipykernel", "matplotlib", "numpy",
           "pandas", "netCDF4", "h5netcdf", "boto3", "bokeh"]
# Started by the charts: the hub's KubeSpawner (singleuser) and the gateway's backend.
COMMANDS = ["jupyterhub-singleuser", "jupyter-lab", "dask"]


def pins(path: Path) -> dict[str, str]:
    """{distribution name: version} of the `name[extras]==version` lines of a requirements file."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^\s#;]+)", line.strip())
        if match:
            found[match.group(1)] = match.group(3)
    return found


def problems(gpu: bool) -> list[str]:
    found = []
    expected = pins(HERE / "requirements.txt") | (pins(HERE / "requirements-gpu.txt") if gpu else {})
    for name, pinned in expected.items():
        if version(name) != pinned:
            found.append(f"{name} is {version(name)}, requirements pin {pinned}")
    for module in MODULES + (["torch"] if gpu else []):
        try:
            importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - any import failure is the finding
            found.append(f"import {module}: {type(error).__name__}: {error}")
    found += [f"{command} is not on PATH" for command in COMMANDS if shutil.which(command) is None]
    if version("jupyterhub").split(".")[0] != "5":
        found.append("jupyterhub must be 5.x, the hub's major (jupyterhub chart 4.4.0)")
    if gpu:
        import torch

        if not torch.version.cuda:
            found.append("torch is not a CUDA build")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="also check the GPU additions (torch, CUDA)")
    found = problems(parser.parse_args().gpu)
    for problem in found:
        print(f"environment check: {problem}", file=sys.stderr)
    if not found:
        print(f"environment check: OK (Python {sys.version.split()[0]})")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
