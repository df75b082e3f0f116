"""An interrupted `factoryctl exec` over a real sshd still reports what finished, what it stopped, what never ran.

sshd runs on this machine, so the "remote" commands are local processes: each says it runs in $1/PID.pid, and the
test ends their process groups itself (sshd refuses the signal request of a root session: factoryctl then sends the
signals with kill over another channel, to the group the command reported).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_lines import StreamedExec
from process_groups import group_of, start
from reaping import reaped
from waiting import wait_for

from factoryctl.cli.render import fold
from factoryctl.errors import ExitCode

#: The first node to get here prints `quick` and exits; every other one prints `hi`, says it runs, and waits.
QUICK_THEN_WAIT = (
    'if mkdir "$1/quick" 2>/dev/null; then echo quick; exit 0; fi; '
    'echo hi; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; exec sleep 20'
)
NODES = ("n01", "n02", "n03")


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n[01-04]: {host: 127.0.0.1}\n")


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    """Where the commands say they run; whatever still runs of them at the end is killed."""
    path = tmp_path / "marks"
    path.mkdir()
    yield path
    for pidfile in path.glob("*.pid"):
        with contextlib.suppress(OSError, AssertionError):
            os.killpg(group_of(int(pidfile.read_text())), signal.SIGKILL)


def test_an_interrupted_exec_over_ssh_still_prints_its_json(factory, marks):
    argv = ["exec", "all", "--fanout", "2", "-n", "-o", "json", "--", "sh", "-c", QUICK_THEN_WAIT, "x", str(marks)]
    with reaped(start("--config", factory, *argv, stdin=subprocess.DEVNULL)) as proc:
        wait_for(lambda: len(list(marks.glob("*.pid"))) >= 2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    doc = json.loads(out)
    [finished] = doc["items"]
    assert (finished["node"] in ("n01", "n02"), finished["stdout"], finished["exit_code"]) == (True, "quick\n", 0)
    stopped = [n for n in NODES if n != finished["node"]]
    # `hi` may still be on its way when the channel is closed: what had arrived is kept, as for a timeout
    assert [(e["node"], e["error"], e["message"], e["stdout"] in ("", "hi\n")) for e in doc["errors"][:2]] == [
        (node, "interrupted", "command interrupted before it finished", True) for node in stopped
    ]
    assert doc["errors"][2] == {"node": "n04", "error": "interrupted", "message": "not started: exec was interrupted"}


def test_an_interrupted_exec_lines_over_ssh_reports_what_it_stopped(factory, marks):
    argv = ["exec", "all", "--fanout", "2", "-n", "--lines", "--", "sh", "-c", QUICK_THEN_WAIT, "x", str(marks)]
    run = StreamedExec("--config", factory, *argv)
    with reaped(run.proc):
        lines = run.lines(3)  # quick, and both waiting nodes' hi: they reached exec
        run.proc.send_signal(signal.SIGTERM)
        returncode, err = run.finish()
    assert returncode == ExitCode.TERMINATED, err
    [quick] = [line.split(":")[0] for line in lines if line.endswith(": quick")]
    stopped = [n for n in NODES if n != quick]
    assert sorted(lines) == sorted([f"{quick}: quick", *(f"{n}: hi" for n in stopped)])
    assert f"factoryctl: {fold(stopped)} (2): command interrupted before it finished\n" in err
    assert "factoryctl: n04: not started: exec was interrupted\n" in err
    assert err.endswith(
        "factoryctl: terminated\nhint: SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the"
        " command again, with more time if a time limit ended it.\n"
    )
