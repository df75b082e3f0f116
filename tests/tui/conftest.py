"""Dashboard test fixtures: colour on, the fixed factory's services, and `async def` tests run on asyncio."""

from __future__ import annotations

import asyncio
import inspect
import sys
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
