"""`events --kind` takes several kinds, repeated or comma-separated, and lists their union (as `sched simulate
--policy` takes several policies). `--kind controller_start --kind controller_stop` kept only the last, silently,
and a comma list was refused as an unknown kind. On a real SQLite store, through the in-process CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    config = write_factory(tmp_path, "n[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)
    store = Store(tmp_path / "state" / "factory.db")
    now = time.time()
    store.add_events(
        [
            Event(now - 50, "controller_start", "the controller started"),
            Event(now - 40, "node_up", "n1 is up", node="n1"),
            Event(now - 30, "xid", "n1/0: XID 13", node="n1", gpu=0, severity="error"),
            Event(now - 20, "controller_stop", "the controller stopped"),
            Event(now - 10, "controller_start", "the controller started again"),
        ]
    )
    store.close()
    return config


def kinds(cli: Any, factory: Path, *args: str) -> list[str]:
    result = cli("--config", str(factory), "events", *args, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [item["kind"] for item in result.json()["items"]]


def test_repeated_and_comma_separated_kinds_list_their_union_in_time_order(cli: Any, factory: Path) -> None:
    both = ["controller_start", "controller_stop", "controller_start"]
    assert kinds(cli, factory, "--kind", "controller_start", "--kind", "controller_stop") == both
    assert kinds(cli, factory, "--kind", "controller_start,controller_stop") == both
    assert kinds(cli, factory, "--kind", "CONTROLLER_STOP, controller_start", "--kind", "controller_stop") == both
    assert kinds(cli, factory, "--kind", "xid,node_up") == ["node_up", "xid"]
    assert kinds(cli, factory, "--kind", "xid,controller_start", "--limit", "2") == ["xid", "controller_start"]


def test_an_unknown_kind_in_a_list_or_an_empty_list_is_a_usage_error(cli: Any, factory: Path) -> None:
    typo = cli("--config", str(factory), "events", "--kind", "xid,controller_stpo")
    assert typo.exit_code == 2
    assert "unknown event kind 'controller_stpo'" in typo.stderr
    assert "did you mean controller_stop?" in typo.stderr
    empty = cli("--config", str(factory), "events", "--kind", ",")
    assert empty.exit_code == 2
    assert "--kind names no event kind." in empty.stderr


def test_follow_prints_only_the_kinds_asked(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(factory.parent / "state" / "factory.db")
    now = time.time()
    writes = [
        [Event(now, "node_down", "n2 is down", node="n2", severity="error"), Event(now, "xid", "n2/1: XID 79")],
        [Event(now + 1, "controller_stop", "the controller stopped again")],
    ]

    def pause(seconds: float) -> None:
        if not writes:
            raise KeyboardInterrupt
        store.add_events(writes.pop(0))

    patch_main_thread_sleep(monkeypatch, pause)
    try:
        result = cli("--config", str(factory), "events", "--follow", "--kind", "xid,controller_stop", "-o", "json")
    finally:
        store.close()
    assert result.exit_code == 130, result.stderr
    messages = [json.loads(line)["message"] for line in result.stdout.splitlines()]
    assert messages == [
        "n1/0: XID 13",
        "the controller stopped",
        "n2/1: XID 79",
        "the controller stopped again",
    ]
