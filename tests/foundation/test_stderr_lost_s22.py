"""A stderr that cannot be written (a full disk, its reader gone) loses the messages only: the status is the command's.

docs/cli.md says so, but a failed write on stderr was taken for a failed write on stdout: `2>/dev/full` turned an
unknown command (2) or an unreachable node (4) into exit 1 with a Python traceback written to the full stderr, and a
stderr pipe whose reader had gone turned them into 141, though stdout was complete. A failed write on stdout still
ends as before: 141 for a closed pipe, 1 and the sentence for a full disk.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV


class _Unwritable(io.StringIO):
    """A stream whose every write and flush fails with `errno` (ENOSPC: a full disk; EPIPE: its reader went away)."""

    def __init__(self, error: int) -> None:
        super().__init__()
        self.error = error
        self.tries = 0

    def write(self, text: str) -> int:
        self.tries += 1
        raise OSError(self.error, os.strerror(self.error))

    def flush(self) -> None:
        raise OSError(self.error, os.strerror(self.error))


def _refused_port() -> int:
    """A port on 127.0.0.1 nobody listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    """factory.yaml with one node whose SSH port refuses the connection (`nodes` exits 4 for it)."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n  dead01: {{host: 127.0.0.1, port: {_refused_port()}}}\n"
    )
    return path


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EPIPE, errno.EIO])
def test_in_process_a_failing_stderr_keeps_the_commands_status(
    factory: Path, error: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factoryctl.cli.app import run

    for args, status in ((["nodesx"], 2), (["--config", str(factory), "nodes", "dead01", "-o", "csv"], 4)):
        out, err = io.StringIO(), _Unwritable(error)
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        assert run(args) == status, args
        assert err.tries >= 1  # the message was tried, and lost
    assert out.getvalue().splitlines()[1].startswith("dead01,127.0.0.1,")


def _buffered() -> dict[str, str]:
    """The environment with Python's standard streams buffered, as a user's shell has them (no PYTHONUNBUFFERED):
    the bytes of a failed write then stay in stderr's buffer, for the interpreter's last flush to fail on again."""
    return {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}


def _run(args: list[str], **streams: Any) -> subprocess.CompletedProcess[bytes]:
    """`factoryctl ARGS` in its own process, stdin /dev/null, stdout and stderr as `streams` say."""
    return subprocess.run(
        [*CLI_ARGV, *args], stdin=subprocess.DEVNULL, env=_buffered(), timeout=120, check=False, **streams
    )


def test_stderr_to_a_full_disk_keeps_the_status_and_stdout(factory: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    with open("/dev/full", "wb") as full, out.open("wb") as sink:
        usage = _run(["nodesx"], stdout=sink, stderr=full)
        listed = _run(["--config", str(factory), "nodes", "dead01", "-o", "csv"], stdout=sink, stderr=full)
    assert usage.returncode == 2
    assert listed.returncode == 4
    assert out.read_text().splitlines()[1].startswith("dead01,127.0.0.1,")


def test_stderr_whose_reader_went_away_keeps_the_status_and_stdout(factory: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    reader, writer = os.pipe()
    os.close(reader)  # what `2> >(exec 0<&-; true)` leaves: EPIPE on every write
    try:
        with out.open("wb") as sink:
            listed = _run(["--config", str(factory), "nodes", "dead01", "-o", "csv"], stdout=sink, stderr=writer)
            usage = _run(["nodesx"], stdout=sink, stderr=writer)
    finally:
        os.close(writer)
    assert listed.returncode == 4
    assert usage.returncode == 2
    assert out.read_text().splitlines()[1].startswith("dead01,127.0.0.1,")


def test_stdout_failures_end_as_documented_whatever_stderr_is(factory: Path) -> None:
    args = ["--config", str(factory), "config", "show"]
    with open("/dev/full", "wb") as full:
        both_full = _run(args, stdout=full, stderr=full)
        told = _run(args, stdout=full, stderr=subprocess.PIPE)
    assert both_full.returncode == 1  # the sentence is lost with stderr; the status is the full stdout's
    assert told.returncode == 1
    assert told.stderr.startswith(b"factoryctl: could not write the output: No space left on device.\n")
    reader, writer = os.pipe()
    os.close(reader)
    try:
        closed = _run(args, stdout=writer, stderr=writer)  # both pipes' readers went away
    finally:
        os.close(writer)
    assert closed.returncode == 141


def test_a_message_held_for_a_full_stderr_does_not_make_the_exit_120() -> None:
    """A failed write's bytes stay in stderr's buffer, and failed the interpreter's last flush again: exit 120."""
    program = (
        "import contextlib, sys\n"
        "from factoryctl.cli.app import main\n"
        "with contextlib.suppress(OSError):\n"
        "    sys.stderr.write('a message whose write failed, kept quiet as logging keeps it\\n')\n"
        "sys.argv = ['factoryctl', '--version']\n"
        "main()\n"
    )
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-c", program],
            stdout=subprocess.PIPE,
            stderr=full,
            env=_buffered(),
            timeout=60,
            check=False,
        )
    assert done.returncode == 0
    assert done.stdout.startswith(b"factoryctl ")


def test_a_ctrl_c_while_the_cli_loads_exits_130_with_a_full_stderr() -> None:
    from test_stop_while_loading import INTERRUPTED_IMPORT

    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-c", INTERRUPTED_IMPORT], stderr=full, env=_buffered(), timeout=60, check=False
        )
    assert done.returncode == 130


LATER_MESSAGES = """
import errno, io, os
from factoryctl.cli.stderr_lost import LosesMessages

class FullOnce(io.TextIOBase):  # stderr on a disk full for one write, then with room again
    fails = 1

    def write(self, text):
        if FullOnce.fails:
            FullOnce.fails -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return os.write(2, text.encode())

    def fileno(self):
        return 2

stderr = LosesMessages(FullOnce())
stderr.write("lost while the disk is full\\n")
os.write(2, b"a log line written to the descriptor, as the controller's log handler writes\\n")
stderr.write("a later message\\n")
"""


def test_one_failed_write_does_not_silence_stderr_for_the_rest_of_the_process(tmp_path) -> None:
    """A daemon's log (`controller run 2>>log`) goes on once the disk has room again: only the failed line is lost."""
    log = tmp_path / "log"
    with log.open("wb") as out:
        done = subprocess.run([sys.executable, "-c", LATER_MESSAGES], stderr=out, timeout=60, check=False)
    assert done.returncode == 0
    assert log.read_text() == (
        "a log line written to the descriptor, as the controller's log handler writes\na later message\n"
    )


THREADS_FAILING_TOGETHER = """
import os, sys, threading
from factoryctl.cli.stderr_lost import LosesMessages

reader, writer = os.pipe()  # stderr: a pipe nobody reads, EPIPE on every write
os.close(reader)
os.dup2(writer, 2)
os.close(writer)
before = os.fstat(2).st_ino
sys.stderr = LosesMessages(sys.stderr)

def messages():
    for number in range(2000):
        sys.stderr.write(f"message {number}\\n")
        sys.stderr.flush()

threads = [threading.Thread(target=messages) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("kept" if os.fstat(2).st_ino == before else "lost")
"""


def test_threads_failing_together_leave_stderr_where_it_was() -> None:
    """Two drops at once saved each other's /dev/null as the descriptor to put back: stderr stayed /dev/null."""
    done = subprocess.run(
        [sys.executable, "-c", THREADS_FAILING_TOGETHER], capture_output=True, text=True, timeout=120, check=False
    )
    assert (done.returncode, done.stdout) == (0, "kept\n"), done.stderr
