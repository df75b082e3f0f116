"""exec's exit status for a command that dies of a signal or cannot run, on local and SSH nodes (`fleet`: both).

A command killed by signal N failed, and exec says so: 128 + N on a local node (as `sh -c` reports it: 137 for the
OOM killer's SIGKILL), 255 on an SSH node (as ssh reports it: sshd names the signal, paramiko drops the name). Never
0 and never negative, in the exit status as in JSON. A command that cannot run is 127 (not found) or 126 (found, not
runnable) on both transports, as bash (the login shell of the test sshd's user) says.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture


def killed_status(transport: str, sig: signal.Signals) -> int:
    """What exec reports for a command that `sig` killed on a node of `transport`."""
    return 128 + sig.value if transport == "local" else 255


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV], ids=lambda sig: sig.name)
def test_a_command_killed_by_a_signal_fails(cli, fleet: Fleet, sig: signal.Signals):  # noqa: F811
    suicide = f"kill -{sig.name.removeprefix('SIG')} $$"
    status = killed_status(fleet.transport, sig)
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "sh", "-c", suicide)
    assert r.exit_code == status, r.stderr
    assert [(i["node"], i["exit_code"]) for i in r.json()["items"]] == [("n01", status), ("n02", status)]
    table = cli("--config", fleet.config, "exec", "all", "--", "sh", "-c", suicide)
    assert table.exit_code == status
    assert table.stderr.splitlines()[-1] == f"factoryctl: n[01-02] (2): exited with exit code {status}"


def test_one_node_killed_among_successes_fails_the_exec(cli, fleet: Fleet, tmp_path: Path):  # noqa: F811
    """A cron script's `exec all -- job`: one node's job OOM-killed, the other's fine, and exec fails."""
    first = tmp_path / "first"  # the node that makes it first succeeds; the other is killed
    script = 'mkdir "$0" 2>/dev/null && exit 0; kill -KILL $$'
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "sh", "-c", script, str(first))
    status = killed_status(fleet.transport, signal.SIGKILL)
    assert r.exit_code == status, r.stderr
    assert sorted(i["exit_code"] for i in r.json()["items"]) == [0, status]


@pytest.mark.parametrize(
    ("name", "status"),
    [("plain-file", 126), ("a-directory", 126), ("missing", 127)],
)
def test_a_command_that_cannot_run_gives_the_shells_status(cli, fleet: Fleet, tmp_path, name, status):  # noqa: F811
    (tmp_path / "plain-file").write_text("not a program\n")  # no execute permission (even for root)
    (tmp_path / "a-directory").mkdir()
    command = str(tmp_path / name)
    r = cli("--config", fleet.config, "exec", "all", "--", command, "arg")
    assert r.exit_code == status, r.stderr
    assert r.stderr.splitlines()[-1] == f"factoryctl: n[01-02] (2): exited with exit code {status}"
    assert f"{command}: " in r.stderr  # the shell's (or the local transport's) word on why


def test_a_command_name_not_found_gives_127(cli, fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    r = cli("--config", fleet.config, "exec", "all", "-o", "json", "--", "factoryctl-no-such-command")
    assert r.exit_code == 127
    assert [i["exit_code"] for i in r.json()["items"]] == [127, 127]
