"""`heliocloud sandbox` run the way a person runs it: a subprocess, read through endpoints.json."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from heliocloud.sandbox.moto import stop_process

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running_sandbox(state: Path, *, timeout: float = 180):
    """Yield (process, endpoints) once the sandbox has written endpoints.json; Ctrl-C it after
    (a test may stop it itself first, to check how it stops)."""
    proc = subprocess.Popen([sys.executable, "-m", "heliocloud.cli", "sandbox", "--state-dir", str(state)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not (state / "endpoints.json").exists():
            assert proc.poll() is None, f"sandbox exited early: {proc.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "sandbox did not write endpoints.json"
            time.sleep(0.2)
        yield proc, json.loads((state / "endpoints.json").read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stop_process(proc, timeout=60)
