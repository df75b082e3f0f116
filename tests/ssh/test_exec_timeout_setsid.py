"""exec's timeout when what holds the output open left the command's session (`setsid`): no hint that cannot work.

The kill ends the command's process group, but a process that made a session of its own is out of its reach and
keeps the channel open. exec used to hint `factoryctl exec NODE -- kill -KILL -- -GROUP` for a group that no longer
existed (the command fails: No such process). Now it says the group has ended, and how to find what runs on.
sshd runs on this machine as root, so the "remote" processes are local ones, checked in /proc.
"""

from __future__ import annotations

import getpass
import json
import subprocess
from typing import Any

from test_exec_timeout_kill import WAITS, alive, factory, pid_in, pids  # noqa: F401 - fixtures, used by name

from factoryctl.errors import ExitCode


def test_a_process_in_a_new_session_holding_the_output_gets_no_kill_hint_for_a_gone_group(
    cli: Any,
    factory: str,  # noqa: F811 - the fixture, as a parameter
    pids: Any,  # noqa: F811 - the fixture, as a parameter
) -> None:
    argv = ["sh", "-c", f"setsid sh -c '{WAITS}' x \"$1\" & wait", "x", str(pids / "escaped")]
    r = cli("--config", factory, "exec", "n1", "-n", "--timeout", "2", "-o", "json", "--", *argv)
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    [error] = json.loads(r.stdout)["errors"]
    message = error["message"]
    assert message.startswith("command did not finish within 2 s; its process group "), message
    group = int(message.split("its process group ", 1)[1].split()[0])
    assert message.endswith(
        " has ended, but processes it started in a new session (setsid, a daemon) may still be running on the "
        "node, holding its output open"
    ), message
    assert subprocess.run(["kill", "-0", "--", f"-{group}"], capture_output=True).returncode != 0  # truly gone
    hint = f"hint: look for them with `factoryctl exec n1 -- ps -o pid,sess,args -u {getpass.getuser()}`"
    assert hint in r.stderr
    assert "kill -KILL" not in r.stderr
    escaped = pid_in(pids / "escaped")
    assert alive(escaped)  # true: the fixture ends it
    listed = cli("--config", factory, "exec", "n1", "--", "ps", "-o", "pid,sess,args", "-u", getpass.getuser())
    assert str(escaped) in listed.stdout  # the hint's command finds it


def test_a_group_still_there_keeps_its_kill_hint(
    cli: Any,
    factory: str,  # noqa: F811 - the fixture, as a parameter
    pids: Any,  # noqa: F811 - the fixture, as a parameter
) -> None:
    """A plain command that ignores nothing is killed with its group: the usual words, no probe needed."""
    argv = ["sh", "-c", WAITS, "x", str(pids / "plain")]
    r = cli("--config", factory, "exec", "n1", "-n", "--timeout", "2", "-o", "json", "--", *argv)
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert json.loads(r.stdout)["errors"][0]["message"] == "command did not finish within 2 s and was killed"
