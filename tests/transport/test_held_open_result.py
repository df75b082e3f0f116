"""A command that left a job holding its output open says so in its own result; Ctrl-C cuts its grace short.

`CommandResult.held_open` (transport/base.py) replaced a process-wide set of node names that only exec read: a
transport used outside exec (the dashboard's, a test's) marked a name there, which a later exec then reported as its
own command's. The grace after such a command's exit (transport/held_open.py) now ends at once on `interrupt`
(Ctrl-C): it was waited out. The grace is made an hour long here, so that waiting it out meets the test's own
timeout rather than passing by chance.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from background_jobs import alive, marks  # noqa: F401 - marks: the fixture
from waiting import wait_for

from factoryctl.model.inventory import NodeSpec
from factoryctl.transport import held_open
from factoryctl.transport.base import CommandResult
from factoryctl.transport.held_open import HELD_OPEN_NOTE
from factoryctl.transport.local import LocalTransport
from factoryctl.transport.stops_underway import STOPS_UNDERWAY

#: Starts a `sleep` that keeps stderr open (its pid in $1/jobs), notes its own pid in $1/shell, says `started`, exits 0.
LEAVES_A_JOB = (
    'nohup sleep 3600 >/dev/null & echo $! >> "$1/jobs"; echo $$ > "$1/shell.tmp" && mv "$1/shell.tmp" "$1/shell"; '
    "echo started"
)


def _transport(name: str, tmp_path: Path) -> LocalTransport:
    return LocalTransport(NodeSpec(name=name, host=name, transport="local"), "lab", tmp_path / "state")


def test_the_result_says_its_output_was_left_held_open(tmp_path: Path, marks: Path) -> None:  # noqa: F811 - marks: the fixture
    transport = _transport("ws", tmp_path)
    left = transport.run(["sh", "-c", LEAVES_A_JOB, "x", str(marks)], 60)
    assert (left.exit_code, left.stdout, left.held_open) == (0, b"started\n", True)
    ended = transport.run(["echo", "hi"], 60)
    assert (ended.exit_code, ended.stdout, ended.held_open) == (0, b"hi\n", False)


def test_exec_never_says_held_open_of_a_command_it_did_not_run(cli: Any, tmp_path: Path, marks: Path) -> None:  # noqa: F811 - marks: the fixture
    """A node's output left held open by another caller's command (in this process) is none of exec's business."""
    assert _transport("ws", tmp_path).run(["sh", "-c", LEAVES_A_JOB, "x", str(marks)], 60).stdout == b"started\n"
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  ws: {transport: local}\n")
    r = cli("--config", str(config), "exec", "ws", "--", "echo", "hi")
    assert (r.exit_code, r.stdout, r.stderr) == (0, "-" * 15 + "\nws (1)\n" + "-" * 15 + "\nhi\n", "")
    assert HELD_OPEN_NOTE not in r.stderr


def test_an_interrupt_ends_the_grace_at_once(tmp_path: Path, marks: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - marks: the fixture
    """Ctrl-C once the command exited: the result comes now, not at the grace's end (an hour: the join's timeout)."""
    monkeypatch.setattr(held_open, "HELD_GRACE_S", 3600.0)
    transport = _transport("ws-grace", tmp_path)
    results: list[CommandResult] = []
    argv = ["sh", "-c", LEAVES_A_JOB, "x", str(marks)]
    running = threading.Thread(target=lambda: results.append(transport.run(argv, 7200)), daemon=True)
    running.start()
    try:
        shell = marks / "shell"
        wait_for(lambda: shell.exists() and not alive(int(shell.read_text())), what="the command's exit")
        transport.interrupt()
        running.join(60)  # the job is killed after the test: a grace waited out ends then
        assert not running.is_alive(), "the grace was waited out"
    finally:
        STOPS_UNDERWAY.forget("ws-grace")
    [result] = results
    assert (result.exit_code, result.stdout, result.held_open) == (0, b"started\n", True)
