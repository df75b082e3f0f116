"""A `power set` killed with SIGKILL left its requests `unknown` for ever: the next one closes them, `abandoned`.

The request of a node asked is written before the node is asked; a SIGKILL before its answer leaves it `unknown`.
A rerun on the same GPUs found them at the value, wrote no entry and closed nothing, so `audit` kept saying
`unknown`, as of a command still running. Each request now names its process, and the next request closes those of
a process that ended, saying so (with its pid). Real agents on the simulated driver (local transport), a real
SIGKILL; requests of a process still running, or of another host, are left as they are; a store of schema 4 with
such a request left is migrated, and its request closed too. Finding requests reads only the index of requests.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from test_power_set_killed import _factory_whose_set_reply_is_held, _killed_once, _limits

from factoryctl.store.audit_runs import ABANDONED, close_ended
from factoryctl.store.rows import UNKNOWN, AuditEntry
from factoryctl.store.schema import MIGRATIONS
from factoryctl.store.sqlite import Store
from factoryctl.store.who import Run, run_ended, this_run

T0 = 1_700_000_000.0


def _outcomes(cli, factory: Path) -> list[tuple[str, int | None, float | None, str]]:
    listed = cli("--config", str(factory), "audit", "-o", "json").json()["items"]
    return [(e["node"], e["gpu"], e["after_w"], e["outcome"]) for e in listed]


def test_a_rerun_after_a_sigkill_closes_the_killed_commands_requests(cli, tmp_path):
    factory = _factory_whose_set_reply_is_held(tmp_path)  # `held` changes its limits; its answer never comes back
    _killed_once(cli, factory, "held", ["held", "--watts", "450", "--reason", "grid peak"])
    assert _outcomes(cli, factory) == [("held", None, None, UNKNOWN)]
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        [run] = store._query("SELECT run FROM audit")
    finally:
        store.close()
    killed = Run.parsed(run[0])
    assert killed is not None
    assert run_ended(killed)
    # the node mended (its replies pass again), the same request run again: its GPUs are at 450 W already
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  held: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    result = cli("--config", str(factory), "power", "set", "held", "--watts", "450")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        f"factoryctl: 1 audit entry of held was left `unknown` by a command that ended without recording an answer (pid "
        f"{killed.pid}): now `abandoned`; the limits there may or may not have changed (`factoryctl gpus held` says "
        "what they are)."
    )
    assert _limits(cli, factory, "held") == [450, 450]
    assert _outcomes(cli, factory) == [("held", None, None, ABANDONED)]  # the rerun changed nothing: no entry
    again = cli("--config", str(factory), "power", "set", "held", "--watts", "450")
    assert (again.exit_code, again.stderr) == (0, "")  # said once: nothing is left to close


def _request(node: str, gpu: int | None = None) -> AuditEntry:
    return AuditEntry(T0, node, gpu, "set", None, None, False, "root", None, None, 450.0, UNKNOWN)


def _ended_process() -> Run:
    """The run of a process of this host that ran and ended (reaped)."""
    code = "from factoryctl.store.who import this_run; print(this_run().text())"
    said = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    run = Run.parsed(said.strip())
    assert run is not None
    return run


def test_only_the_requests_of_an_ended_process_of_this_host_are_closed(tmp_path: Path) -> None:
    alive, ended = this_run(), _ended_process()
    elsewhere = Run("another-host", ended.pid, ended.boot, ended.start)
    reused = Run(alive.host, alive.pid, alive.boot, "0")  # this pid, started at another time: another process
    store = Store(tmp_path / "factory.db")
    try:
        store.add_audit_requests([_request("live", 0), _request("live", 1)], alive)
        store.add_audit_requests([_request("gone", 0), _request("gone", 1), _request("gone2")], ended)
        store.add_audit_requests([_request("far")], elsewhere)
        store.add_audit_requests([_request("old")], reused)
        closed = close_ended(store, run_ended)
        outcomes = sorted((e.node, e.gpu, e.outcome) for e in store.audit(0))
    finally:
        store.close()
    assert alive.start is not None
    assert not run_ended(alive)
    assert sorted((c.pid, c.nodes, c.entries) for c in closed) == sorted(
        [(ended.pid, ["gone", "gone2"], 3), (alive.pid, ["old"], 1)]
    )
    assert outcomes == [
        ("far", None, UNKNOWN),  # another host's process: this one cannot tell
        ("gone", 0, ABANDONED),
        ("gone", 1, ABANDONED),
        ("gone2", None, ABANDONED),
        ("live", 0, UNKNOWN),  # still running: its answers may yet come
        ("live", 1, UNKNOWN),
        ("old", None, ABANDONED),
    ]


def test_a_schema_4_store_with_a_request_left_is_migrated_and_the_request_closed(tmp_path: Path) -> None:
    """A request left by the factoryctl before this one (no process recorded): its command is taken as gone."""
    path = tmp_path / "factory.db"
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:4]:
        for statement in migration.split(";"):
            db.execute(statement)
    db.execute("PRAGMA user_version = 4")
    insert = (
        "INSERT INTO audit (t_ms, node, gpu, action, before_w, after_w, clamped, user, reason, requested_w, outcome)"
        " VALUES (?, ?, -1, 'set', ?, ?, 0, 'root', NULL, 450, ?)"
    )
    db.execute(insert, (int(T0 * 1000), "left", None, None, UNKNOWN))
    db.execute(insert, (int(T0 * 1000), "answered", 700, 450, None))
    db.commit()
    db.close()
    store = Store(path)  # a writer: migrates
    try:
        [closed] = close_ended(store, run_ended)
        outcomes = [(e.node, e.outcome) for e in store.audit(0)]
        plans = [
            store._query(f"EXPLAIN QUERY PLAN {query}", params)[0][-1]
            for query, params in (
                ("SELECT DISTINCT run FROM audit WHERE outcome = 'unknown' ORDER BY run LIMIT ?", [100]),
                ("UPDATE audit SET outcome = 'abandoned' WHERE outcome = 'unknown' AND run = ?", [""]),
            )
        ]
    finally:
        store.close()
    assert (closed.pid, closed.nodes, closed.entries) == (None, ["left"], 1)
    assert outcomes == [("left", ABANDONED), ("answered", "confirmed")]
    assert plans == [  # the requests only, however many answers the log holds
        "SCAN audit USING COVERING INDEX audit_request_run",
        "SEARCH audit USING INDEX audit_request_run (run=? AND outcome=?)",
    ]
