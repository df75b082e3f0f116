"""Collector fixtures: the fake agent fleet (fakefleet.py); hand-moved clocks and a store for the writer tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from clocks import Clocks
from fakefleet import FakeFleet

from factoryctl.store.sqlite import Store


@pytest.fixture
def fleet() -> Iterator[FakeFleet]:
    fleet = FakeFleet()
    yield fleet
    fleet.stop_all()


@pytest.fixture
def clocks() -> Clocks:
    """A wall and a monotonic clock the test moves by hand (tests/clocks.py)."""
    return Clocks()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "factory.db")
