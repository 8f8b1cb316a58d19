"""`heliocloud sandbox` run the way a person runs it: a subprocess, read through endpoints.json."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running_sandbox(state: Path, *, timeout: float = 180):
    """Yield (process, endpoints) once the sandbox has written endpoints.json; Ctrl-C it after
    (a test may stop it itself first, to check how it stops). It runs in a session of its own,
    so whatever it started is swept away at the end even if it had to be killed."""
    # The state dir is given relative to the repo, as `make sandbox` gives `.sandbox`.
    proc = subprocess.Popen([sys.executable, "-m", "heliocloud.cli", "sandbox", "--state-dir",
                             os.path.relpath(state, REPO)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
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
        try:
            proc.wait(timeout=120)
        finally:
            proc.wait()
            # Nothing should be left; whatever is (the sandbox's servers have process groups of
            # their own, in its session) goes now, so one failing test cannot leak into the next.
            for leftover in psutil.process_iter():
                with suppress(psutil.Error, ProcessLookupError):
                    if os.getsid(leftover.pid) == proc.pid:
                        leftover.kill()
