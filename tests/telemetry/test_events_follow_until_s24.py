"""`factoryctl events --follow --until T`: follow the events as they come, and end (exit 0) when T is reached.

`--follow` refused any `--until` ("it has no end"), where cron and operators want "follow the events until 06:00".
A time ahead now ends the follow there: the events before it are printed as they come (the last poll once T is
reached), none at or after it, as the listing's `--until` leaves them out. An `--until` that is not ahead (a duration
is that long ago) is refused, exit 2. Run through the in-process CLI on a real SQLite store; each pause of the follow
writes what the test gives it, then sleeps for real, so the follow ends on the clock, a second or two after it began.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "n[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def _store(factory: Path) -> Store:
    return Store(factory.parent / "state" / "factory.db")


def _writing_at_each_pause(monkeypatch: pytest.MonkeyPatch, store: Store, writes: list[list[Event]]) -> list[float]:
    """At each pause of the follow, the next of `writes` goes into the store, then the pause sleeps for real.

    Returns the pauses asked for (seconds), as they come.
    """
    real_sleep = time.sleep
    pauses: list[float] = []

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        if writes:
            store.add_events(writes.pop(0))
        real_sleep(seconds)

    patch_main_thread_sleep(monkeypatch, pause)
    return pauses


def _messages(result: Any) -> list[str]:
    return [json.loads(line)["message"] for line in result.stdout.splitlines()]


def test_follow_until_a_time_ahead_prints_what_comes_before_it_and_ends(
    cli: Callable[..., Any], factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    until = now + 2
    store = _store(factory)
    try:
        store.add_events(
            [
                Event(now - 60, "node_up", "n1 is up (before)", node="n1"),
                Event(until + 60, "xid", "n1/0: XID 13 (stamped after --until)", node="n1", gpu=0, severity="error"),
            ]
        )
        writes = [
            [
                Event(time.time(), "node_down", "n2 is down (as it came)", node="n2", severity="error"),
                Event(until, "xid", "n2/1: XID 48 (at --until: excluded)", node="n2", gpu=1, severity="error"),
            ],
            [Event(time.time(), "node_up", "n2 is up (written in the last pause)", node="n2")],
        ]
        pauses = _writing_at_each_pause(monkeypatch, store, writes)
        result = cli("--config", str(factory), "events", "--follow", "--until", _iso(until), "-o", "json")
    finally:
        store.close()
    assert result.exit_code == 0, result.stderr
    assert time.time() >= until  # it ended because the time came, not before
    assert _messages(result) == [
        "n1 is up (before)",
        "n2 is down (as it came)",
        "n2 is up (written in the last pause)",
    ]
    assert all(p <= 1 for p in pauses)  # never past --until by more than the follow's poll
    assert result.stderr == ""


@pytest.mark.parametrize("until", ["1h", "0s", "2020-01-01T00:00Z"])
def test_follow_refuses_an_until_not_ahead(cli: Callable[..., Any], factory: Path, until: str) -> None:
    result = cli("--config", str(factory), "events", "--follow", "--since", "2019-01-01T00:00Z", "--until", until)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"factoryctl: --follow prints events as they come until --until, and --until {until} is not in the future."
    )
    assert re.fullmatch(
        r"hint: give --until a time ahead \(e\.g\. --until \d{4}-\d\d-\d\dT\d\d:\d\dZ; a duration means that long "
        r"ago\), or leave out --follow to list the events before it\.",
        lines[1],
    )
    assert len(lines) == 2
    assert result.stdout == ""
