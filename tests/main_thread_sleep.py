"""Standing in for `time.sleep` in the test's own (main) thread only: other threads keep sleeping for real.

Tests end a `--follow` or `--watch` loop by replacing `time.sleep` with a function that raises KeyboardInterrupt
(a Ctrl-C at the pause). Patched for the whole process, it also hit other threads' sleeps, such as a simulated
node's watch of a rank left by an earlier test: an unhandled KeyboardInterrupt in that thread (a warning in CI).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest


def patch_main_thread_sleep(monkeypatch: pytest.MonkeyPatch, stand_in: Callable[[float], Any]) -> None:
    """`time.sleep` is `stand_in` in the main thread, and the real one elsewhere, until the test ends."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> Any:
        if threading.current_thread() is threading.main_thread():
            return stand_in(seconds)
        return real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)
