"""Collector fixtures: the fake agent fleet (fakefleet.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fakefleet import FakeFleet


@pytest.fixture
def fleet() -> Iterator[FakeFleet]:
    fleet = FakeFleet()
    yield fleet
    fleet.stop_all()
