"""Start and stop a real moto server on loopback: the sandbox's AWS, and the tests'."""
from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time

import requests

SANDBOX_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


# Popen arguments for the servers the sandbox starts: a process group of their own, because a
# Ctrl-C in the terminal reaches the whole foreground group, and only the sandbox should act on
# it, stopping its parts before the servers they talk to (each server then gets SIGTERM).
OWN_PROCESS_GROUP = {"process_group": 0}


def stop_process(process: subprocess.Popen | None, *, timeout: float = 10) -> None:
    """Terminate a child process and reap it; kill it if it does not exit within ``timeout``."""
    if process is None:
        return
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, *, timeout: float = 30.0, process: subprocess.Popen | None = None,
                  ok_only: bool = False) -> None:
    """Poll ``url`` until it answers (any status; with ``ok_only``, 200: a proxy answers before it
    has its routes) or fail with a clear error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process serving {url} exited with code {process.returncode}")
        with contextlib.suppress(requests.RequestException):   # not listening yet
            if requests.get(url, timeout=2).status_code == 200 or not ok_only:
                return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer{' 200' if ok_only else ''} within {timeout:.0f} s")


class MotoServer:
    """``with MotoServer() as moto: moto.url`` — a moto_server subprocess on 127.0.0.1."""

    def __init__(self, port: int = 0, *, log=subprocess.DEVNULL):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log
        self.process: subprocess.Popen | None = None

    def start(self) -> "MotoServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log,
            stderr=self._log,
            **OWN_PROCESS_GROUP,
        )
        wait_for_http(f"{self.url}/moto-api/", process=self.process)
        return self

    def reset(self) -> None:
        """Forget every resource (between tests)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
