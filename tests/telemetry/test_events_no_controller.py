"""`events` on a store no controller ever ran on says why its listing is empty, once, on stderr.

A newcomer's `factoryctl events --since 7d` printed a bare header (exit 0) from a store only `nodes drain` had
written: nothing said that the controller is what records node and GPU events. A store a controller has run on
stays silent when the window is simply empty, and `-q` drops the note as it drops every note.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store

NOTE = "factoryctl: no controller has run on this store; health events are recorded by `factoryctl controller run`.\n"


@pytest.fixture
def config(cli: Any, tmp_path: Path) -> Path:
    """A factory whose store exists (a drain wrote it) but no controller ever ran on."""
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  ws: {{transport: local, sim: {{gpus: 2}}}}\n"
    )
    assert cli("-q", "-c", str(config), "nodes", "drain", "ws", "-r", "disk").exit_code == 0
    return config


def test_an_empty_listing_says_no_controller_has_run(cli: Any, config: Path) -> None:
    result = cli("-c", str(config), "events", "--since", "7d", "--kind", "xid")
    assert (result.exit_code, result.stdout.split(), result.stderr) == (
        0,
        ["TIME", "SEVERITY", "KIND", "NODE", "MESSAGE"],
        NOTE,
    )
    quiet = cli("-q", "-c", str(config), "events", "--since", "7d", "--kind", "xid", "-o", "json")
    assert (quiet.exit_code, quiet.json()["items"], quiet.stderr) == (0, [], "")  # type: ignore[index]


def test_a_listing_with_events_carries_no_note(cli: Any, config: Path) -> None:
    result = cli("-c", str(config), "events", "--since", "7d")
    assert result.exit_code == 0
    assert "drain" in result.stdout
    assert result.stderr == ""


def test_an_empty_window_of_a_store_a_controller_ran_on_stays_silent(cli: Any, config: Path, tmp_path: Path) -> None:
    store = Store(tmp_path / "state" / "factory.db")
    try:
        store.add_events([Event(time.time() - 30 * 86400, "controller_start", "controller 7 started with 1 node")])
    finally:
        store.close()
    result = cli("-c", str(config), "events", "--since", "7d", "--kind", "xid")
    assert (result.exit_code, result.stderr) == (0, "")
