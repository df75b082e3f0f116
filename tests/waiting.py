"""Waiting for a condition in integration tests: poll it until true, fail after a timeout (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(check: Callable[[], bool], timeout: float = 30.0, poll_s: float = 0.1) -> None:
    """Return once `check()` is true; an AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(poll_s)
