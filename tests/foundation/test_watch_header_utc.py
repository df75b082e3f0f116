"""The `--watch` header's time is UTC with Z, as every other time factoryctl prints, whatever the local zone."""

from __future__ import annotations

import calendar
import io
import re
import sys
import time

import pytest

from factoryctl.cli.listing import show_listing, watch_header
from factoryctl.cli.render import Column, OutputFormat


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_the_header_is_utc_in_another_zone(new_york):
    moment = calendar.timegm((2026, 11, 22, 17, 34, 56, 0, 0, 0))
    assert time.localtime(moment).tm_hour == 12  # the zone is in force: local time would read 12:34:56
    assert watch_header(2, moment) == "Every 2s: 2026-11-22T17:34:56Z"
    assert watch_header(0.5, moment) == "Every 0.5s: 2026-11-22T17:34:56Z"


def test_a_watch_redraw_starts_with_the_utc_header(new_york, monkeypatch: pytest.MonkeyPatch):
    screen = _Terminal()
    monkeypatch.setattr(sys, "stdout", screen)

    def produce() -> tuple[list[dict[str, str]], list[object]]:
        raise_after_first.append(1)
        if len(raise_after_first) > 1:
            raise KeyboardInterrupt
        return [{"node": "n1"}], []

    raise_after_first: list[int] = []
    before = time.time()
    status = show_listing(produce, [Column("node", "NODE")], OutputFormat.table, False, watch=True, interval=0.1)
    after = time.time()
    assert status == 130
    first = screen.getvalue().removeprefix("\x1b[H\x1b[2J").splitlines()[0]
    stamp = re.fullmatch(r"Every 0\.1s: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)", first)
    assert stamp is not None, first
    shown = calendar.timegm(time.strptime(stamp[1], "%Y-%m-%dT%H:%M:%SZ"))
    assert int(before) <= shown <= after
