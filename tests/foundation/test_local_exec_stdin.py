"""`factoryctl exec` standard input on local-transport nodes, and its bound (no sshd needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.errors import ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.local import LocalTransport

MIB = 1 << 20


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  ws: {transport: local}\n  ws2: {transport: local}\n")
    return str(path)


def factoryctl(*args: str, stdin: bytes | None) -> subprocess.CompletedProcess[bytes]:
    """The CLI in a real process; `stdin` goes through a real pipe (None: /dev/null)."""
    return subprocess.run(
        [sys.executable, "-c", "from factoryctl.cli.app import main; main()", *args],
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_local_transport_feeds_stdin_then_eof(tmp_path):
    transport = LocalTransport(NodeSpec(name="ws", host="ws", transport="local"), "lab", tmp_path)
    data = os.urandom(3 * MIB) + bytes(range(256))
    assert transport.run(["cat"], 60, stdin=data).stdout == data
    assert transport.run(["wc", "-c"], 60, stdin=b"").stdout.strip() == b"0"
    assert transport.run(["true"], 60, stdin=data).exit_code == 0  # input nobody reads is no error


def test_every_local_node_gets_the_bytes(factory, tmp_path):
    data = os.urandom(2 * MIB) + b"\x00\n"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    script = 'cat > "$(mktemp "$1/in.XXXXXX")"'
    done = factoryctl("--config", factory, "exec", "all", "--", "sh", "-c", script, "sh", str(inbox), stdin=data)
    assert done.returncode == 0, done.stderr
    assert [p.read_bytes() == data for p in inbox.iterdir()] == [True, True]


def test_stdin_up_to_the_limit_is_sent_and_past_it_refused(factory, tmp_path):
    limit = 64 * MIB
    done = factoryctl("--config", factory, "exec", "ws", "-o", "json", "--", "wc", "-c", stdin=b"x" * limit)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["items"][0]["stdout"].strip() == str(limit)

    marker = tmp_path / "ran"
    done = factoryctl("--config", factory, "exec", "ws", "--", "touch", str(marker), stdin=b"x" * (limit + 1))
    assert done.returncode == ExitCode.USAGE
    lines = done.stderr.decode().splitlines()
    assert lines[0] == "factoryctl: standard input is larger than 64 MiB, the most `exec` sends to every node."
    assert lines[1].startswith("hint: ")
    assert "--no-stdin" in lines[1]
    assert len(lines) == 2
    assert not marker.exists()  # refused before anything ran


def test_no_stdin_at_all_and_no_stdin_option(factory):
    done = factoryctl("--config", factory, "exec", "ws", "--", "wc", "-c", stdin=None)
    assert (done.returncode, done.stdout.splitlines()[-1].strip()) == (0, b"0")
    done = factoryctl("--config", factory, "exec", "--no-stdin", "ws", "--", "wc", "-c", stdin=b"ignored")
    assert (done.returncode, done.stdout.splitlines()[-1].strip()) == (0, b"0")
