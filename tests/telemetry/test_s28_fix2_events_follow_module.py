"""`events --follow`'s loop in its own module (cli/events_follow.py), driven directly on a real store.

The move changed no behaviour (tests/telemetry/test_events_follow.py drives `--follow` end to end); this drives the
loop itself: it prints each event stored after the one it was given, and returns the store it followed once
`--until` has come.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from factoryctl.cli.events_follow import FollowedEventPrinter, follow_events
from factoryctl.cli.render import OutputFormat
from factoryctl.store.logs import EventMatch
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


def test_the_follow_loop_prints_what_came_after_and_stops_at_until(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(tmp_path / "factory.db")
    now = time.time()
    store.add_events([Event(now - 2, "node_down", "before", node="n1", severity="warning")])
    written = store.last_event_id()
    store.add_events([Event(now - 1, "node_down", "after", node="n1", severity="warning")])
    followed = follow_events(
        store, written, EventMatch(), FollowedEventPrinter(OutputFormat.json, True), 0.1, now + 0.3
    )
    assert followed is store
    assert [json.loads(line)["message"] for line in capsys.readouterr().out.splitlines()] == ["after"]
    store.close()
