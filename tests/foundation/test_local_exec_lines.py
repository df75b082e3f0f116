"""`factoryctl exec --lines` on local-transport nodes: its line printer, its readers, a reader of its output going away.

What holds for SSH nodes alike (lines streamed as they come, output before a timeout kept, ...) is tested once for
both transports, in tests/ssh/test_exec_streaming.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from exec_lines import StreamedExec

from factoryctl.cli.line_printer import LINE_LIMIT, LinePrinter
from factoryctl.transport.base import CappedOutput
from factoryctl.transport.local import _Collect


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  ws: {transport: local}\n  ws2: {transport: local}\n")
    return str(path)


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


def test_a_reader_that_goes_away_stops_endless_commands(factory):
    """`exec --lines -- tail -f ... | grep -m1 X`: once stdout's reader is gone, the commands stop and exec exits 141."""
    endless = 'while true; do echo "tick"; sleep 0.1; done'
    run = StreamedExec("--config", factory, "exec", "all", "--lines", "-t", "120", "--", "sh", "-c", endless)
    assert len(run.lines(2)) == 2
    assert run.proc.stdout is not None
    run.proc.stdout.close()
    assert run.proc.wait(timeout=30) == 141


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
