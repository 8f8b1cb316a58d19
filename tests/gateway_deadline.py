"""A per-test deadline for tests that talk to a real Dask Gateway: the dask-gateway client has no
request timeouts, so a stuck call would otherwise stall the whole suite. SIGALRM turns it into a
failed test (and the fixtures' teardown still stops every server and cluster)."""
from __future__ import annotations

import signal

import pytest

SECONDS = 120


@pytest.fixture(autouse=True)
def deadline():
    def expire(signum, frame):
        raise TimeoutError(f"test did not finish within {SECONDS} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(SECONDS)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
