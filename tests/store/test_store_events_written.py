"""`Store.events_written`: the events after a given one, in the order the store took them (what `--follow` reads).

Followed by time, an event written after a newer one was never read; the newest 1000 filtered after the LIMIT hid a
kind in a burst of others. A real SQLite store.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.store.logs import EventMatch
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


def test_events_are_read_by_id_whatever_their_time_and_filtered_before_the_limit(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    assert store.last_event_id() == 0
    store.add_events([Event(1000.0, "node_up", "n1 is up", node="n1")])
    mark = store.last_event_id()
    store.add_events([Event(2000.0 + i, "node_down", f"n2 is down {i}", node="n2") for i in range(5)])
    store.add_events([Event(1500.0, "xid", "n1/0: XID 13", node="n1", gpu=0)])  # older, written later
    last = store.last_event_id()
    assert last == mark + 6

    def read(match: EventMatch, limit: int = 1000, after: int = mark) -> list[str]:
        return [e.message for e in store.events_written(after, last, match, limit)]

    assert read(EventMatch()) == [*(f"n2 is down {i}" for i in range(5)), "n1/0: XID 13"]
    assert read(EventMatch(kind="xid"), limit=1) == ["n1/0: XID 13"]
    assert read(EventMatch(node=["n1"])) == ["n1/0: XID 13"]
    assert read(EventMatch(since=2003.0)) == ["n2 is down 3", "n2 is down 4"]
    assert read(EventMatch(), limit=2, after=mark + 2) == ["n2 is down 2", "n2 is down 3"]
    store.add_events([Event(3000.0, "drain", "n1 drained", node="n1")])
    assert read(EventMatch(), after=last) == []  # past `through_id`: the next poll's
    store.close()
