"""The sandbox: the configured instance running on loopback, no AWS account needed.

A moto server plays AWS; each part of the instance plugs in a ``start(sandbox)`` function (see
PARTS in ``heliocloud.sandbox.run``) that provisions its resources in moto, starts whatever it
serves, and records its endpoints. Everything started is stopped on Ctrl-C.
"""
from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from heliocloud import aws
from heliocloud.config import InstanceConfig


@dataclass
class Sandbox:
    """What a sandbox part needs: the config, the moto endpoint, and ways to run things."""

    config: InstanceConfig
    state_dir: Path
    aws_url: str
    region: str = "us-east-1"
    endpoints: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)   # per-part settings of this run
    stopping: threading.Event = field(default_factory=threading.Event)
    _processes: list[subprocess.Popen] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _cleanups: list[Callable[[], None]] = field(default_factory=list)

    def client(self, service: str):
        """A boto3 client for the sandbox's moto server."""
        return aws.client(service, endpoint_url=self.aws_url, region=self.region)

    @property
    def env(self) -> dict[str, str]:
        """Environment for child processes and in-process handlers: point boto3 at moto."""
        from heliocloud.sandbox.moto import SANDBOX_CREDENTIALS

        return {**SANDBOX_CREDENTIALS, "AWS_ENDPOINT_URL": self.aws_url, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region}

    def spawn(self, args: list[str], *, name: str, **kwargs) -> subprocess.Popen:
        """Start a child process that is terminated when the sandbox stops; logs go to state_dir."""
        log = open(self.state_dir / f"{name}.log", "ab")
        env = {**os.environ, **self.env, **kwargs.pop("env", {})}
        from heliocloud.sandbox.moto import OWN_PROCESS_GROUP

        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, **OWN_PROCESS_GROUP, **kwargs)
        self._processes.append(proc)
        self._cleanups.append(log.close)
        return proc

    def run_in_background(self, target: Callable[[], None], *, name: str) -> threading.Thread:
        """Run ``target`` in a daemon thread; it must return soon after ``self.stopping`` is set."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def on_stop(self, cleanup: Callable[[], None]) -> None:
        self._cleanups.append(cleanup)

    def write_endpoints(self) -> Path:
        path = self.state_dir / "endpoints.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.endpoints, indent=2) + "\n")
        tmp.replace(path)  # readers never see a half-written file
        return path

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=15)
        from heliocloud.sandbox.moto import stop_process

        for proc in reversed(self._processes):
            if proc.poll() is None:
                proc.terminate()  # all at once, then reap each
        for proc in reversed(self._processes):
            stop_process(proc)
        for cleanup in reversed(self._cleanups):
            cleanup()
