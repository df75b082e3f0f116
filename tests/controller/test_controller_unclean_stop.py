"""A controller killed with kill -9 (the OOM killer, a crash) is said by the next one, in its log and in `events`.

It left nothing in `events`: the next `controller_start` read as after a clean stop. The next controller to start on
the store now finds the newest controller event a `controller_start` with no stop after it, and records a
`controller_stop` warning (the dead one's pid, when it last stored samples) before its own start; after a clean stop
it records nothing of the kind.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from cli_process import CLI_ARGV
from store_rows import NODE_SAMPLES_SQL, count_while_created, rows
from waiting import wait_for

pytestmark = pytest.mark.slow


def controller_events(db: Path) -> list[tuple[str, str, str]]:
    """(kind, severity, message) of the controller's own events, in the order stored."""
    sql = "SELECT kind, severity, message FROM event WHERE kind LIKE 'controller_%' ORDER BY id"
    return [(kind, severity, message) for kind, severity, message in rows(db, sql)]


def started(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """`controller run` with its stderr in `log`, once it has stored samples."""
    db = config.parent / "state" / "factory.db"
    before = count_while_created(db, NODE_SAMPLES_SQL, "n1")
    with log.open("wb") as err:
        proc = subprocess.Popen([*CLI_ARGV, "--config", str(config), "controller", "run"], stderr=err)
    wait_for(lambda: count_while_created(db, NODE_SAMPLES_SQL, "n1") > before + 2, what="samples stored")
    return proc


def test_a_killed_controller_is_said_by_the_next_and_a_clean_stop_is_not(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local, sim: h100-sxm, gpus: 1}}}}\n"
        "controller: {interval_s: 0.5}\n"
    )
    db = tmp_path / "state" / "factory.db"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(killed := started(config, tmp_path / "first.log"))
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        procs.append(second := started(config, tmp_path / "second.log"))
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
        procs.append(third := started(config, tmp_path / "third.log"))
        third.send_signal(signal.SIGTERM)
        assert third.wait(30) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for agent in psutil.process_iter(["cmdline"]):
            if any(str(tmp_path) in part for part in agent.info["cmdline"] or []):
                agent.kill()
    events = controller_events(db)
    assert [(kind, severity) for kind, severity, _ in events] == [
        ("controller_start", "info"),
        ("controller_stop", "warning"),  # the killed one's, said by the second
        ("controller_start", "info"),
        ("controller_stop", "info"),
        ("controller_start", "info"),  # after a clean stop: nothing more
        ("controller_stop", "info"),
    ]
    said = events[1][2]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    assert re.fullmatch(
        rf"the previous controller \(pid {killed.pid}\) ended without stopping \(killed, crashed, or its stop could "
        rf"not be written: its log says which\); it last stored samples at {stamp}",
        said,
    ), said
    assert f"WARNING factoryctl.controller: {said}" in (tmp_path / "second.log").read_text()
    assert "ended without stopping" not in (tmp_path / "third.log").read_text()
