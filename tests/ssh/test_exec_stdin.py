"""`factoryctl exec` forwards its standard input to every node's command, then EOF, like ssh and pdsh (real sshd)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from factoryctl.errors import NodeError
from factoryctl.transport.ssh import SshOptions, SshPool

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
#: Every node writes what it read into a fresh file under $1 (all nodes share this machine).
SAVE_STDIN = 'cat > "$(mktemp "$1/in.XXXXXX")"'


@pytest.fixture
def connection(ssh_node):
    pool = SshPool(OPTIONS)
    yield pool.connect(ssh_node())
    pool.close()


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    nodes = "  n[01-03]: {host: 127.0.0.1}\n  ws: {transport: local}\n"
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, nodes)


def factoryctl(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """The real console script behind a real pipe: `... | factoryctl ARGS`."""
    return subprocess.run(
        [sys.executable, "-c", "from factoryctl.cli.app import main; main()", *args],
        input=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_binary_stdin_round_trips_through_cat(connection):
    data = os.urandom(3 << 20) + bytes(range(256)) + b"\r\n\x00"
    result = connection.run(["cat"], timeout=60, stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data


def test_big_stdin_and_big_output_at_once_do_not_stall(connection):
    """The command writes while it reads: feeding and draining must interleave, or both windows fill."""
    data = os.urandom(12 << 20)
    script = "tee /dev/stderr | sha256sum"
    result = connection.run(["sh", "-c", script], timeout=60, stdin=data)
    assert result.exit_code == 0
    assert result.stderr == data
    import hashlib

    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_a_command_that_reads_no_stdin_is_not_an_error(connection):
    data = os.urandom(8 << 20)
    assert connection.run(["true"], timeout=60, stdin=data).exit_code == 0
    result = connection.run(["head", "-c", "3"], timeout=60, stdin=data)
    assert (result.exit_code, result.stdout) == (0, data[:3])


def test_stdin_nobody_reads_still_times_out(connection):
    started = time.monotonic()
    with pytest.raises(NodeError) as caught:
        connection.run(["sleep", "30"], timeout=1, stdin=os.urandom(16 << 20))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 20


def test_every_node_gets_the_same_bytes(factory, tmp_path):
    """ssh nodes and a local node, through a real pipe; binary and a few MiB."""
    data = os.urandom(5 << 20) + b"\x00\xff\n"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    done = factoryctl("--config", factory, "exec", "all", "--", "sh", "-c", SAVE_STDIN, "sh", str(inbox), stdin=data)
    assert done.returncode == 0, done.stderr
    received = [path.read_bytes() for path in inbox.iterdir()]
    assert len(received) == 4
    assert all(r == data for r in received)


def test_piped_text_is_gathered_like_any_output(cli, factory):
    r = cli("--config", factory, "exec", "n[01-03]", "--", "cat", stdin="hi\nthere\n")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "---------------\nn[01-03] (3)\n---------------\nhi\nthere\n"


def test_empty_stdin_is_eof_at_once(factory):
    done = factoryctl("--config", factory, "exec", "all", "-o", "json", "--", "wc", "-c", stdin=b"")
    assert done.returncode == 0, done.stderr
    import json

    assert sorted(i["stdout"].strip() for i in json.loads(done.stdout)["items"]) == ["0"] * 4


def test_a_terminal_is_not_read(cli, factory):
    """On a terminal nothing is sent (the command gets EOF) and exec does not wait for typing."""
    r = cli("--config", factory, "exec", "n01", "--", "wc", "-c", stdin="typed\n", tty=True)
    assert (r.exit_code, r.stdout.splitlines()[-1].strip()) == (0, "0")


def test_no_stdin_option_sends_nothing(cli, factory):
    r = cli("--config", factory, "exec", "-n", "n01", "--", "wc", "-c", stdin="piped\n")
    assert (r.exit_code, r.stdout.splitlines()[-1].strip()) == (0, "0")
