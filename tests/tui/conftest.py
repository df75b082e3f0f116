"""Dashboard test helpers: the fixed factory's services and a way to wait for the app without sleeping."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factory_data import FrozenServices  # noqa: E402


@pytest.fixture(autouse=True)
def _colour(monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots show colour (the NO_COLOR test sets it back on itself)."""
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def services() -> FrozenServices:
    return FrozenServices()


async def wait_until(pilot, condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (checked after each message-queue drain), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.02)


async def first_snapshot(pilot) -> None:
    """Wait until the app has published its first snapshot and the screens drew it."""
    await wait_until(pilot, lambda: pilot.app.snapshots_taken >= 1, what="the first snapshot")
    await pilot.pause()
