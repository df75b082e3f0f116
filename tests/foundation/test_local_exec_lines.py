"""`factoryctl exec` on local-transport nodes: `--lines` streams lines as they come; output before a timeout is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from exec_lines import StreamedExec
from process_groups import assert_group_gone, group_of

from factoryctl.cli.exec import LINE_LIMIT, LinePrinter
from factoryctl.transport.base import CappedOutput
from factoryctl.transport.local import _Collect

#: Prints a line, then waits for the file $1 before printing the next: its first line can only be seen streamed.
GATED = 'echo "first $0"; while [ ! -e "$1" ]; do sleep 0.05; done; echo "second $0"'


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  ws: {transport: local}\n  ws2: {transport: local}\n")
    return str(path)


def test_lines_arrive_while_the_commands_run(factory, tmp_path):
    gate = tmp_path / "gate"
    run = StreamedExec(
        "--config", factory, "exec", "all", "--lines", "-t", "60", "--", "sh", "-c", GATED, "x", str(gate)
    )
    try:
        assert sorted(run.lines(2)) == ["ws2: first x", "ws: first x"]  # before either command could end
        assert run.proc.poll() is None
    finally:
        gate.touch()
    assert sorted(run.lines(2)) == ["ws2: second x", "ws: second x"]
    assert run.finish() == (0, "")


def test_lines_streams_stdin_fed_commands(factory, tmp_path):
    """The stdin broadcast keeps working under --lines: every node's `cat` echoes the piped line at once."""
    read_end, write_end = os.pipe()
    try:
        run = StreamedExec("--config", factory, "exec", "all", "--lines", "-t", "60", "--", "cat", stdin=read_end)
        os.write(write_end, b"hello\n")
        assert sorted(run.lines(2)) == ["ws2: hello", "ws: hello"]  # the input has not even ended
    finally:
        os.close(write_end)
        os.close(read_end)
    assert run.finish() == (0, "")


def test_lines_never_interleaves_half_lines(cli, factory):
    script = 'printf "%s" "begin-$0-"; sleep 0.3; echo "end-$0"; printf "%s" "last-$0"'
    r = cli("--config", factory, "exec", "all", "--lines", "--", "sh", "-c", script, "a")
    assert r.exit_code == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["ws2: begin-a-end-a", "ws2: last-a", "ws: begin-a-end-a", "ws: last-a"]


def test_line_printer_keeps_a_bounded_buffer(capsys):
    printer = LinePrinter()
    sink = printer.sink("n1")
    for _ in range(3):
        sink(1, b"y" * (LINE_LIMIT // 2))  # no newline ever: printed in pieces, not held whole
    sink(2, b"oops")
    printer.finish("n1")
    out, err = capsys.readouterr()
    assert [len(line) for line in out.splitlines()] == [len("n1: ") + LINE_LIMIT, len("n1: ") + LINE_LIMIT // 2]
    assert err == "n1: oops\n"


def test_output_before_a_timeout_is_kept(cli, factory):
    script = "echo partial; echo perr >&2; sleep 30"
    r = cli("--config", factory, "exec", "ws", "--timeout", "2", "-o", "json", "--", "sh", "-c", script)
    assert r.exit_code == 124
    doc = r.json()
    assert doc["items"] == []
    assert [(e["node"], e["error"], e["stdout"], e["stderr"]) for e in doc["errors"]] == [
        ("ws", "timeout", "partial\n", "perr\n")
    ]
    table = cli("--config", factory, "exec", "all", "--timeout", "2", "--", "sh", "-c", script)
    assert table.exit_code == 124
    assert table.stdout == "---------------\nws,ws2 (2)\n---------------\npartial\n"
    assert "ws,ws2: perr" in table.stderr
    assert "did not finish within" in table.stderr
    assert "exited with exit code" not in table.stderr


def test_a_reader_that_goes_away_stops_endless_commands(factory):
    """`exec --lines -- tail -f ... | grep -m1 X`: once stdout's reader is gone, the commands stop and exec exits 141."""
    endless = 'while true; do echo "tick"; sleep 0.1; done'
    run = StreamedExec("--config", factory, "exec", "all", "--lines", "-t", "120", "--", "sh", "-c", endless)
    assert len(run.lines(2)) == 2
    assert run.proc.stdout is not None
    run.proc.stdout.close()
    assert run.proc.wait(timeout=30) == 141


def test_a_reader_that_goes_away_stops_commands_with_sigint_ignored(factory, tmp_path):
    """`( exec --lines ... ) | head -1 &` in a script: SIGINT is ignored there, yet exec still stops at once (141)."""
    pidfile = tmp_path / "pid"
    endless = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; while true; do echo tick; sleep 0.1; done"
    argv = ["--config", factory, "exec", "ws", "--lines", "-t", "60", "--", "sh", "-c", endless]
    run = StreamedExec(*argv, ignore_sigint=True)
    assert run.lines(1) == ["ws: tick"]
    group = group_of(int(pidfile.read_text()))
    assert run.proc.stdout is not None
    run.proc.stdout.close()
    started = time.monotonic()
    assert run.proc.wait(timeout=30) == 141
    assert time.monotonic() - started < 10  # not the 60 s timeout
    assert_group_gone(group)


def test_output_still_in_the_pipe_when_reading_stops_is_kept():
    """A timeout under load can stop the reader before it read the command's last words: stop() reads them."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as stream:
        collect = _Collect(stream, CappedOutput())
        collect._stop.set()  # the reader gives up (within a poll) before the output below arrives
        collect._thread.join()
        os.write(write_end, b"last words\n")
        collect.stop()
        os.close(write_end)
        assert collect.kept.value() == b"last words\n"
