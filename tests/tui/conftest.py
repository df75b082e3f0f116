"""Dashboard test helpers: the fixed factory's services and a way to wait for the app without sleeping."""

from __future__ import annotations

import asyncio
import inspect
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from factory_data import FrozenServices


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run `async def` tests (Pilot needs a loop) on a fresh asyncio loop, without an extra plugin."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    asyncio.run(pyfuncitem.obj(**args))
    return True


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


def plain(renderable: object, width: int = 80) -> str:
    """What a Rich renderable reads as, without styles."""
    import io

    from rich.console import Console

    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()
