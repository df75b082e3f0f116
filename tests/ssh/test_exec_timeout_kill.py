"""A command that outlives exec's `--timeout`, or an interrupted exec, is stopped on the node, root login included.

OpenSSH refuses the `signal` request of a root session ("session signalling requires privilege separation"), and
root is the usual login on GPU nodes: `exec --timeout 3 -- sh -c 'sleep 300'` used to exit 124 and leave every
`sleep 300` running (black-box review, session 11). The command line now reports its process group first, on stderr
(cut out of the output), and the group and its session are signalled over another channel. sshd runs on this
machine as root, so the "remote" commands are local processes: each writes its pid to a file, checked in /proc.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from process_groups import start
from reaping import reaped
from sshd_fixture import PATIENT
from waiting import wait_for

from factoryctl.errors import ExitCode
from factoryctl.transport.quoting import shell_join, with_group_report
from factoryctl.transport.ssh import STOP_TIMEOUT_S
from factoryctl.transport.ssh_channel import CommandStderr, signals_delivered
from factoryctl.transport.ssh_pool import SshPool

#: Writes its pid to $1, prints to both streams (bytes that are no text, no final newline), then waits.
WAITS = 'echo $$ > "$1.tmp" && mv "$1.tmp" "$1"; printf "started\\0\\r\\n"; printf "on stderr" >&2; exec sleep 300'
#: Like WAITS, in a child of its own process group (GNU timeout's): $2 gets the child's pid.
WAITS_IN_OWN_GROUP = f'echo $$ > "$1"; exec timeout 300 sh -c \'{WAITS}\' x "$2"'


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[1].split()[0] != "Z"


def signal_requests(sshd) -> int:
    """How many `signal` requests sshd got (and refused: it runs as root) so far."""
    return (sshd.root / "sshd.log").read_text(errors="replace").count("session_signal_req")


def pid_in(path: Path) -> int:
    wait_for(path.exists, what=f"{path.name} written")
    return int(path.read_text())


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n")


@pytest.fixture
def pids(tmp_path: Path):
    """Where the commands write their pids; whatever still runs of them at the end is killed."""
    path = tmp_path / "pids"
    path.mkdir()
    yield path
    for pidfile in path.iterdir():
        if pidfile.read_text().strip().isdigit() and alive(int(pidfile.read_text())):
            subprocess.run(["kill", "-KILL", pidfile.read_text().strip()], check=False)


def test_a_command_past_its_timeout_is_killed_on_the_node_and_its_output_kept(cli, factory, pids, sshd):
    requests = signal_requests(sshd)
    argv = ["exec", "n1", "-n", "--timeout", "2", "-o", "json", "--", "sh", "-c", WAITS, "x", str(pids / "a")]
    started = time.monotonic()
    r = cli("--config", factory, *argv)
    took = time.monotonic() - started
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    [error] = json.loads(r.stdout)["errors"]
    assert error["message"] == "command did not finish within 2 s and was killed"
    assert (error["stdout"], error["stderr"]) == ("started\0\r\n", "on stderr")  # byte for byte, no report line
    assert not alive(int((pids / "a").read_text()))
    assert took < 2 + STOP_TIMEOUT_S + 5  # the kill is bounded
    assert signal_requests(sshd) == requests  # none sent: sshd refuses them to root (and logs an error for each)


def test_a_child_in_a_process_group_of_its_own_is_killed_too(cli, factory, pids):
    argv = ["sh", "-c", WAITS_IN_OWN_GROUP, "x", str(pids / "parent"), str(pids / "child")]
    r = cli("--config", factory, "exec", "n1", "-n", "--timeout", "2", "--", *argv)
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert r.stdout.endswith("\nstarted\0\r\n")
    assert "n1: command did not finish within 2 s and was killed\n" in r.stderr
    assert not alive(pid_in(pids / "parent"))
    assert not alive(pid_in(pids / "child"))


def test_a_process_that_left_the_session_holding_the_output_is_said_to_run_on(cli, factory, pids):
    """It cannot be reached by the command's group, which has ended: exec says so, and how to find it (no kill
    hint for a group that no longer exists; see test_exec_timeout_setsid.py)."""
    argv = ["sh", "-c", f"setsid sh -c '{WAITS}' x \"$1\"", "x", str(pids / "escaped")]
    r = cli("--config", factory, "exec", "n1", "-n", "--timeout", "2", "--", *argv)
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    said = re.search(
        r"^factoryctl: n1: command did not finish within 2 s; its process group (\d+) has ended, but processes it "
        r"started in a new session \(setsid, a daemon\) may still be running on the node, holding its output open\n"
        r"hint: look for them with `factoryctl exec n1 -- ps -o pid,sess,args -u ",
        r.stderr,
        re.MULTILINE,
    )
    assert said is not None, r.stderr
    assert alive(pid_in(pids / "escaped"))  # true: the fixture ends it


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_an_interrupted_exec_stops_its_command_on_the_node(factory, pids, sshd, sig):
    """SIGINT, then SIGHUP, to the command's process group, as the signal requests sshd refuses a root login."""
    requests = signal_requests(sshd)
    proc = start(
        "--config", factory, "exec", "n1", "--", "sh", "-c", WAITS, "x", str(pids / "a"), stdin=subprocess.DEVNULL
    )
    with reaped(proc):
        pid = pid_in(pids / "a")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == (ExitCode.TERMINATED if sig == signal.SIGTERM else ExitCode.INTERRUPTED), err
    assert b"n1: command interrupted before it finished\n" in err
    wait_for(lambda: not alive(pid), timeout=10, what="the command's end")
    assert signal_requests(sshd) == requests


def test_output_stays_byte_exact_after_what_the_login_shell_writes(sshd_factory, tmp_path):
    """The login shell's startup files write to stderr first (no newline): kept; the report line after it is cut."""
    server = sshd_factory()
    (server.root / "home" / ".bashrc").write_text("printf 'bashrc says hi' >&2\n")
    pool = SshPool(PATIENT)
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    try:
        connection = pool.connect(server.node("n1", known_hosts))
        script = 'printf "a\\0b\\r\\nno newline"; printf "factoryctl-pgid-0:1\\n" >&2; printf "err" >&2; exit 3'
        result = connection.run(["sh", "-c", script], timeout=60)
    finally:
        pool.close()
    assert (result.exit_code, result.stdout) == (3, b"a\0b\r\nno newline")
    assert result.stderr == b"bashrc says hifactoryctl-pgid-0:1\nerr"


@pytest.mark.parametrize("shell", ["sh", "bash", "zsh", "fish"])
def test_every_login_shell_reports_its_own_pid_and_keeps_the_command_as_it_was(shell):
    """The login shell's pid (sshd makes it the session and group leader); the command's output and status unchanged."""
    path = shutil.which(shell)
    assert path is not None, f"{shell} is not installed (scripts/test installs it)"
    command = shell_join(
        ["sh", "-c", 'printf "%s" "$1"; read -r line; printf "%s" "$line" >&2; exit 7', "x", "it's $HOME"]
    )
    token = "factoryctl-pgid-0123456789abcdef"
    proc = subprocess.Popen(
        [path, "-c", with_group_report(command, token)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = proc.communicate(b"input\n", timeout=60)
    assert (proc.returncode, out, err) == (7, b"it's $HOME", f"{token}:{proc.pid}\ninput".encode())


@pytest.mark.parametrize(
    ("version", "user", "delivered"),
    [
        ("OpenSSH_9.2p1 Debian-2+deb12u3", "ops", True),
        ("OpenSSH_7.9", "ops", True),
        ("OpenSSH_10.0", "ops", True),
        ("OpenSSH_9.2p1 Debian-2+deb12u3", "root", False),
        ("OpenSSH_7.4", "ops", False),
        ("dropbear_2022.83", "ops", False),
        (None, "ops", False),
    ],
)
def test_signal_requests_are_used_only_where_sshd_delivers_them(version, user, delivered):
    assert signals_delivered(version, user) is delivered


REPORT = b"factoryctl-pgid-0123456789abcdef:4321\n"


@pytest.mark.parametrize(
    ("before", "after"),
    [(b"", b"err\n"), (b"rc noise", b"err"), (b"rc line\n", b"factoryctl-pgid-0123456789abcdef:9\n"), (b"", b"")],
)
def test_the_report_line_is_cut_out_however_the_stream_is_chunked(before, after):
    whole = before + REPORT + after
    for cut in [*range(len(whole) + 1), None]:
        seen: list[bytes] = []
        err = CommandStderr(
            "factoryctl-pgid-0123456789abcdef", 1 << 20, 2, lambda _, data, seen=seen: seen.append(data)
        )
        chunks = [whole[i : i + 1] for i in range(len(whole))] if cut is None else [whole[:cut], whole[cut:]]
        for chunk in chunks:
            err.add(chunk)
        err.finish()
        assert (err.group, err.value(), b"".join(seen)) == (4321, before + after, before + after), cut


def test_without_a_report_every_byte_is_passed_on():
    err = CommandStderr("factoryctl-pgid-0123456789abcdef", 1 << 20)
    for chunk in (b"factoryctl-pgid-01", b"2x\n", b"factoryctl-pgid-0123456789abcdef:12a\n", b"tail"):
        err.add(chunk)
    err.finish()
    assert (err.group, err.value()) == (None, b"factoryctl-pgid-012x\nfactoryctl-pgid-0123456789abcdef:12a\ntail")


@pytest.mark.parametrize("noise", ["echo noise", "printf noise >&2"], ids=["stdout", "stderr"])
def test_a_login_shell_that_prints_does_not_keep_the_kill_from_the_node(cli, sshd_factory, tmp_path, pids, noise):
    """The kill's own channel runs the login shell's startup files too: closed at once, its shell died writing their
    output to it before it reached `kill` (re-verification, session 11: every `.bashrc` that prints left it running)."""
    server = sshd_factory()
    (server.root / "home" / ".bashrc").write_text(noise + "\n")
    known_hosts = server.write_known_hosts(tmp_path / "known_hosts")
    factory = server.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n")
    argv = ["exec", "n1", "-n", "--timeout", "2", "--", "sh", "-c", WAITS, "x", str(pids / "a")]
    r = cli("--config", factory, *argv)
    assert r.exit_code == ExitCode.TIMEOUT, r.stderr
    assert "n1: command did not finish within 2 s and was killed\n" in r.stderr
    assert not alive(pid_in(pids / "a"))
