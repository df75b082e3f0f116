"""exec's hint for commands still running stops only the login user's own processes, and never by a cut pattern.

The reviewer's case (session 21): the hint said `factoryctl exec '<nodes>' -- pkill -KILL -f '<pattern>'`, matched by
command line only. Run as root (a normal login, docs/ssh.md) it killed every user's processes with that command line
(another user's `python3 -c ... train.py` went with it), and a command line longer than 120 characters was matched by
its start, so anything starting the same went too. Now both the look-up and the kill are limited to the login user
(`-U`), the hint is given once per login user under their nodes, and a cut pattern gets the look-up only.

The other user is `nobody`: starting a process as another user needs root. The hints' commands are run here as exec
would run them on a node (argv, no shell), on real processes.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from factoryctl.cli.exec_output import find_command_hint
from factoryctl.cli.render import report_node_errors
from factoryctl.errors import NodeError

FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="starting another user's process needs root")
MESSAGE = "command interrupted, but still running when exec stopped waiting for it"


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The processes a test starts; whatever is left of them is killed at its end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _commands(hint: str) -> dict[str, list[str]]:
    """The argv of each `factoryctl exec 'n1' -- ...` in the hint, by its first word (`pgrep`, `pkill`, `kill`)."""
    found = [shlex.split(words) for words in re.findall(r"`factoryctl exec 'n1' -- ([^`]+)`", hint)]
    return {argv[0]: argv for argv in found}


def _found(look: list[str]) -> list[int]:
    done = subprocess.run(look, capture_output=True, text=True, check=False)
    return sorted(int(line.split()[0]) for line in done.stdout.splitlines())


@as_root
def test_the_hints_pkill_spares_another_users_process_with_that_command_line(started: Any) -> None:
    argv = ["sleep", "19.25"]
    theirs = subprocess.Popen(argv, user=FOREIGN_UID, group=FOREIGN_UID, extra_groups=[])
    ours = subprocess.Popen(argv)
    started.extend([theirs, ours])
    hint = find_command_hint("n1", argv, getpass.getuser())
    commands = _commands(hint)
    assert _found(commands["pgrep"]) == [ours.pid]  # the look-up lists the login's own process alone
    subprocess.run(commands["pkill"], check=True)
    assert ours.wait(30) == -9
    assert theirs.poll() is None  # the other user's process with the same command line runs on
    assert os.stat(f"/proc/{theirs.pid}").st_uid == FOREIGN_UID


def test_a_cut_command_line_gets_the_look_up_only(started: Any) -> None:
    padding = "p" * 130  # past the 120 characters matched
    argv = [sys.executable, "-c", "import time; time.sleep(19.5)", padding + "a"]
    started.append(subprocess.Popen(argv))
    started.append(subprocess.Popen([*argv[:-1], padding + "b"]))  # another command starting the same
    hint = find_command_hint("n1", argv, getpass.getuser())
    commands = _commands(hint)
    assert "pkill" not in hint
    assert "matches its first 120 characters only, which other commands may share" in hint
    assert "stop the ones that are it with `factoryctl exec NODE -- kill -KILL PID`" in hint
    assert _found(commands["pgrep"]) == sorted(p.pid for p in started)  # why no pkill: both would go


def test_the_hint_is_given_once_per_login_user_with_the_name_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["sleep", "300"]
    logins = {"n1": "alice", "n2": "alice", "n3": "bob", "n4": "o'hara; rm -rf ~"}
    errors = [
        NodeError(n, "interrupted", MESSAGE, find_command_hint(n, argv, u)).as_report() for n, u in logins.items()
    ]
    report_node_errors(errors)
    hints = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hint: ")]
    pattern = shlex.quote("(^|[ /])sleep 300$")
    assert hints == [
        f"hint: look for it with `factoryctl exec 'n[1-2]' -- pgrep -U alice -af {pattern}`; "
        f"`factoryctl exec 'n[1-2]' -- pkill -KILL -U alice -f {pattern}` stops it.",
        f"hint: look for it with `factoryctl exec 'n3' -- pgrep -U bob -af {pattern}`; "
        f"`factoryctl exec 'n3' -- pkill -KILL -U bob -f {pattern}` stops it.",
        f"hint: look for it with `factoryctl exec 'n4' -- pgrep -U {shlex.quote(logins['n4'])} -af {pattern}`; "
        f"`factoryctl exec 'n4' -- pkill -KILL -U {shlex.quote(logins['n4'])} -f {pattern}` stops it.",
    ]
    [pkill] = [w for w in re.findall(r"-- (pkill [^`]+)`", hints[2])]
    assert shlex.split(pkill)[2:4] == ["-U", logins["n4"]]  # one word, as typed: never read by a shell
