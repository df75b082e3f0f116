"""Waiting for a condition in integration tests: poll it until true, fail after a timeout (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(
    check: Callable[[], object], timeout: float = 30.0, what: str = "the condition", poll_s: float = 0.1
) -> None:
    """Return once `check()` is true; an AssertionError naming `what` after `timeout` seconds.

    `timeout` only stops a test that would hang: what is waited for is the condition, never the time.
    """
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {timeout:g} s")
        time.sleep(poll_s)
