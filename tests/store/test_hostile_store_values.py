"""Values a hostile node or environment can put in front of the store: none may fail other rows or reach a terminal.

A real SQLite file each time: the failures were SQLite's own (an INTEGER past 64 bits) and text read back verbatim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from store_rows import rows as stored

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store
from factoryctl.store.who import login_name

T0 = 1_700_000_040.0
ESC = "\x1b"


def test_a_gpu_fact_sqlite_cannot_hold_is_stored_as_unknown_with_every_other_node(tmp_path: Path) -> None:
    """`power_limit_w: 10**30` is a finite number, so it passes the wire checks; SQLite then refused the batch."""
    store = Store(tmp_path / "factory.db")
    bad = GpuSample.from_json("a", {"index": 0, "uuid": "GPU-a", "power_w": 300.0, "power_limit_w": 10**30})
    good = GpuSample.from_json("b", {"index": 0, "uuid": "GPU-b", "power_w": 200.0, "power_limit_w": 700})
    assert store.write([NodeSample("a", T0, gpus=(bad,)), NodeSample("b", T0, gpus=(good,))]) == 2
    rows = {r["node"]: r for r in store.export(["a", "b"], T0 - 1, T0 + 1)}
    assert (rows["a"]["power_w"], rows["b"]["power_w"]) == (300.0, 200.0)
    limits = dict(stored(store.path, "SELECT uuid, power_limit_w FROM gpu"))  # the facts table the overflow was in
    assert limits == {"GPU-a": None, "GPU-b": 700}
    store.close()


@pytest.mark.parametrize("variable", ["LOGNAME", "USER"])
def test_the_audit_name_from_the_environment_is_escaped(
    variable: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cli: Any
) -> None:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, f"alice{ESC}[31mFORGED{ESC}[0m\r")
    assert login_name() == "alice\\x1b[31mFORGED\\x1b[0m\\x0d"
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local}}\n")
    assert cli("--config", str(path), "nodes", "drain", "n1").exit_code == 0
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    assert store.drained_nodes()["n1"].by == "alice\\x1b[31mFORGED\\x1b[0m\\x0d"
    store.close()


def test_a_plain_login_name_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "alice")
    assert login_name() == "alice"


def test_a_stored_sample_from_before_the_time_check_reads_as_never_sampled(tmp_path: Path) -> None:
    """A store written before sample times were checked may hold one past the year 9999: readers must not fail."""
    from factoryctl.store.rows import NodeState

    store = Store(tmp_path / "factory.db")
    gpu = GpuSample.from_json("a", {"index": 0, "power_w": 300.0})
    states = [NodeState("a", "up", T0, T0, None, None), NodeState("b", "up", T0, T0, None, None)]
    store.write([NodeSample("a", T0, gpus=(gpu,)), NodeSample("b", T0, gpus=(gpu,))], [True, True], states)
    store._db.execute(
        "UPDATE node_latest SET sample = replace(sample, ?, '1e13') WHERE node_id = (SELECT id FROM node WHERE name = 'a')",
        (repr(T0),),
    )
    latest = {state.node: sample for state, sample in store.latest()}
    assert latest["a"] is None
    assert latest["b"] is not None
    assert latest["b"].time == T0
    store.close()


def test_a_stored_last_seen_past_the_year_9999_reads_as_unknown(tmp_path: Path) -> None:
    """The listing builds a down node's sample from it: a time no sample may have failed every `nodes` and `gpus`."""
    from factoryctl.store.rows import NodeState

    store = Store(tmp_path / "factory.db")
    store.write([], [], [NodeState("a", "down", T0, T0, "timeout", "a: timed out")])
    store._db.execute("UPDATE node SET last_seen_ms = 1000000000000000000, state_since_ms = 1000000000000000000")
    ((state, sample),) = store.latest()
    assert (state.node, state.last_seen, state.since, sample) == ("a", None, 0.0, None)
    store.close()


def test_a_typed_reason_is_stored_with_its_control_characters_escaped(tmp_path: Path) -> None:
    """Drain and audit reasons are shown to every operator (`nodes -o wide`, `events`, `audit`)."""
    from factoryctl.store.rows import AuditEntry

    store = Store(tmp_path / "factory.db")
    assert store.set_drained(["a"], True, f"maint{ESC}[2Jclear", "bob") == ["a"]
    assert store.drained_nodes()["a"].reason == "maint\\x1b[2Jclear"
    store.add_audit([AuditEntry(T0, "a", 0, "set", 700.0, 450.0, False, "bob", f"x{ESC}]2;pwned\ay")])
    (entry,) = store.audit(0)
    assert entry.reason == "x\\x1b]2;pwned\\x07y"
    store.close()


def test_a_drain_by_a_login_name_that_is_not_utf8_is_stored_with_the_bytes_written_out(tmp_path: Path) -> None:
    """LOGNAME decoded with surrogateescape (the dashboard drains too): SQLite refused it and nothing was drained."""
    store = Store(tmp_path / "factory.db")
    assert store.set_drained(["a"], True, "maint\udcff", "ops\udcff") == ["a"]
    drained = store.drained_nodes()["a"]
    assert (drained.reason, drained.by) == ("maint\\xff", "ops\\xff")
    store.close()


def test_a_login_name_of_thousands_of_characters_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """LOGNAME can be anything: 5,000 characters widened every line of `audit` and `nodes -o wide`."""
    monkeypatch.setenv("LOGNAME", "u" * 5000)
    assert login_name() == "u" * 61 + "..."


def test_an_audit_reason_that_is_not_utf8_is_listed_with_its_byte_shown(tmp_path: Path, cli: Any) -> None:
    """A reason written into the file by other means (x'ff41'): `audit` printed only `Could not decode to UTF-8
    column 'reason'` and no row, in every format."""
    import sqlite3
    import time

    from factoryctl.store.rows import AuditEntry

    now = time.time()
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n1: {{transport: local}}\n")
    store = Store(tmp_path / "state" / "factory.db")
    store.add_audit(
        [
            AuditEntry(now - 2, "n1", 0, "set", 700.0, 500.0, user="alice", reason="cap"),
            AuditEntry(now - 1, "n1", 1, "set", 700.0, 500.0, user="alice", reason="ok"),
        ]
    )
    store.close()
    db = sqlite3.connect(tmp_path / "state" / "factory.db")
    db.execute("UPDATE audit SET reason = CAST(x'ff41' AS TEXT) WHERE gpu = 0")
    db.commit()
    db.close()
    listed = cli("--config", str(path), "audit", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [item["reason"] for item in listed.json()["items"]] == ["\\xffA", "ok"]
    table = cli("--config", str(path), "audit")
    assert table.exit_code == 0, table.stderr
    assert "\\xffA" in table.stdout
