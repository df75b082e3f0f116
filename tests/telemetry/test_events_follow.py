"""`factoryctl events --follow` prints every event stored after it started, once, in the order the store took them.

It followed by time (`t >= the newest seen`), the newest 1000 per poll, `--kind` applied after that limit: an event
written after a newer one (an XID at its agent's time, events held through an outage) was never printed, and a
burst of 1,500 `node_down` hid the XIDs written with it (`--kind xid` printed none of 5). Run through the in-process
CLI on a real SQLite store; each pause of the follow (time.sleep) is where the test writes, then Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
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


def _follow(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch, writes: Sequence[Callable[[Store], None]], *args: str
) -> Any:
    """`events --follow ARGS`, doing one of `writes` into the store at each pause, then Ctrl-C (exit 130)."""
    store = Store(factory.parent / "state" / "factory.db")
    pending = list(writes)

    def pause(seconds: float) -> None:
        if not pending:
            raise KeyboardInterrupt
        pending.pop(0)(store)

    patch_main_thread_sleep(monkeypatch, pause)
    try:
        result = cli("--config", str(factory), "events", "--follow", *args)
    finally:
        store.close()
    assert result.exit_code == 130, result.stderr
    return result


def _add(*events: Event) -> Callable[[Store], None]:
    return lambda store: store.add_events(list(events))


def _messages(result: Any) -> list[str]:
    return [json.loads(line)["message"] for line in result.stdout.splitlines()]


def test_an_event_written_after_a_newer_one_is_printed(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An XID carries its agent's time: written after a newer event, it was older than the follow's mark."""
    now = time.time()
    stored = _add(Event(now - 60, "node_up", "n1 is up", node="n1"))
    stored(Store(factory.parent / "state" / "factory.db"))
    writes = [
        _add(Event(now, "xid", "n1/0: XID 13", node="n1", gpu=0, severity="error")),
        _add(Event(now - 5, "xid", "n2/1: XID 48 (raised earlier, written later)", node="n2", gpu=1, severity="error")),
    ]
    result = _follow(cli, factory, monkeypatch, writes, "-o", "json")
    assert _messages(result) == ["n1 is up", "n1/0: XID 13", "n2/1: XID 48 (raised earlier, written later)"]


def _burst(store: Store) -> None:
    """Five XIDs and 1,500 nodes going down, in one write (as a batch of the controller's writer)."""
    now = time.time()
    xids = [Event(now, "xid", f"n1/0: XID {i}", node="n1", gpu=0, severity="error") for i in range(5)]
    down = [Event(now + 0.001 * i, "node_down", f"n2 is down ({i})", node="n2", severity="error") for i in range(1500)]
    store.add_events(xids + down)


def test_a_burst_is_printed_whole(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    every = _messages(_follow(cli, factory, monkeypatch, [_burst], "-o", "json"))
    assert len(every) == 1505
    assert every[:6] == [*(f"n1/0: XID {i}" for i in range(5)), "n2 is down (0)"]  # in the order written


def test_kind_is_filtered_before_the_events_are_counted(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xids = _messages(_follow(cli, factory, monkeypatch, [_burst], "--kind", "xid", "-o", "json"))
    assert xids == [f"n1/0: XID {i}" for i in range(5)]


def test_nothing_is_printed_twice_and_other_nodes_are_left_out(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = time.time()
    writes = [
        _add(Event(now, "drain", "n1 drained", node="n1"), Event(now, "drain", "n2 drained", node="n2")),
        lambda store: None,  # a poll with nothing new
        _add(Event(now + 1, "resume", "n1 resumed", node="n1")),
    ]
    result = _follow(cli, factory, monkeypatch, writes, "n1", "-o", "json")
    assert _messages(result) == ["n1 drained", "n1 resumed"]


def test_the_rows_stay_under_their_header(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The header was sized alone (TIME four wide), each later batch by its own cells: the columns wandered."""
    now = time.time()
    writes = [
        _add(Event(now, "node_up", "n1 is up", node="n1")),
        _add(Event(now, "controller_start", "the controller started"), Event(now, "xid", "n2/1: XID 79", node="n2")),
    ]
    header, *rows = _follow(cli, factory, monkeypatch, writes).stdout.splitlines()
    assert len(rows) == 3
    starts = [header.index(title) for title in ("SEVERITY", "KIND", "NODE", "MESSAGE")]
    for row in rows:
        assert all(row[at - 1] == " " and row[at] != " " for at in starts[:2] + starts[3:]), (header, row)
    assert rows[0][starts[2] :].startswith("n1 ")
    assert rows[2][starts[3] :] == "n2/1: XID 79"


def test_a_replaced_store_is_followed_from_when_the_old_one_was_last_seen(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its ids start again: what the new file holds is printed from that moment on, then what is written to it."""
    path = factory.parent / "state" / "factory.db"
    started = time.time()

    def replace_store(store: Store) -> None:
        store.close()
        for stale in path.parent.glob("factory.db*"):
            stale.unlink()
        new = Store(path)
        new.add_events([Event(started - 3600, "drain", "n1 drained (restored backup)", node="n1")])
        new.add_events([Event(time.time(), "controller_start", "the controller started")])
        new.close()

    def write_to_the_new_one(_: Store) -> None:
        with contextlib.closing(Store(path)) as new:
            new.add_events([Event(started - 10, "xid", "n2/0: XID 31 (raised earlier)", node="n2", gpu=0)])

    writes = [replace_store, write_to_the_new_one]
    result = _follow(cli, factory, monkeypatch, writes, "-o", "json")
    assert _messages(result) == ["the controller started", "n2/0: XID 31 (raised earlier)"]
    assert "following the new store" in result.stderr


def test_follow_escapes_controls_a_store_holds_raw(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store from an older (or forged) factoryctl holds a message raw: `--follow -o json` printed U+009B (a
    one-character CSI) and a bidi override as they were, where the listing without --follow escapes them."""
    import sqlite3

    path = factory.parent / "state" / "factory.db"
    _add(Event(time.time() - 60, "node_up", "n1 is up", node="n1"))(Store(path))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE event SET message = ?", ("C1:\u009b31m \u202eflip",))
    for output in ("json", "yaml", "csv"):
        result = _follow(cli, factory, monkeypatch, [], "-o", output)
        assert "\u009b" not in result.stdout, output
        assert "\u202e" not in result.stdout, output
        assert r"C1:\x9b31m \u202eflip" in result.stdout.replace("\\\\", "\\"), output
