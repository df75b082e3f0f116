"""A store held by another writer refuses `power set` before any node is asked, and the refusal says nothing changed.

The store's own words ("..., so the audit entry was not saved.") read as if the change had gone through unaudited.
"""

from __future__ import annotations

import sqlite3

from test_power_set_interrupted import _limits, shorten_the_store_lock_wait


def test_the_refusal_of_a_locked_store_says_no_limit_was_changed(cli, tmp_path, monkeypatch):
    shorten_the_store_lock_wait(monkeypatch)
    factory = tmp_path / "factory.yaml"
    state = tmp_path / "state"
    factory.write_text(
        f"name: lab\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: h100-sxm, gpus: 2, seed: 3}}}}\n"
    )
    assert cli("--config", str(factory), "telemetry", "collect", "--once").exit_code == 0  # the store exists
    holder = sqlite3.connect(state / "factory.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = cli("--config", str(factory), "power", "reset", "n1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert result.exit_code == 1
    assert "stayed locked by another writer" in result.stderr
    assert "; no power limit was changed." in result.stderr, result.stderr
    assert _limits(cli, factory, "n1") == [700, 700]
