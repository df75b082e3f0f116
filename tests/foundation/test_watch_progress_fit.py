"""`--watch` and the progress line fit the terminal they are on, and TERM=dumb gets no cursor control.

A terminals review found: `gpus --watch` with 20 GPUs in 80x24 wrapped every 95-column row and scrolled its
`Every 1s:` header and column header away; on a 30-column terminal the progress line (`\\r` back to the start of
the last physical line only) left one line per percent; under TERM=dumb both wrote escape codes (`\\x1b[K`,
`\\x1b[H\\x1b[2J`) that such a terminal prints as they are.
"""

from __future__ import annotations

import fcntl
import io
import os
import struct
import sys
import termios
from typing import Any

import pytest

from factoryctl.cli.cells import cell_width
from factoryctl.cli.listing import show_listing
from factoryctl.cli.progress import DELAY_S, ProgressLine, replay_progress
from factoryctl.cli.render import Column, OutputFormat
from factoryctl.errors import NodeError

CLEAR = "\x1b[H\x1b[2J"
COLUMNS = (Column("node", "NODE"), Column("gpu", "GPU"), Column("model", "MODEL"), Column("note", "NOTE"))
#: 30 rows 95 columns wide, as `gpus` on a 30-GPU fleet
ROWS = [
    {"node": f"gpu-node-{i:02d}", "gpu": i % 8, "model": "NVIDIA H100 80GB HBM3", "note": "x" * 50} for i in range(30)
]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _watch_once(
    monkeypatch: pytest.MonkeyPatch, term: str, errors: list[NodeError] | None = None, rounds: int = 1
) -> tuple[str, str]:
    """`--watch` on a terminal (stdout and stderr both) for `rounds` redraws; what stdout and stderr got."""
    out, err = _Terminal(), _Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv("TERM", term)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LINES", "24")
    produced: list[int] = []

    def produce() -> tuple[list[dict[str, Any]], list[NodeError]]:
        if len(produced) == rounds:
            raise KeyboardInterrupt
        produced.append(1)
        return ROWS, errors or []

    assert show_listing(produce, COLUMNS, OutputFormat.table, False, watch=True, interval=0.01) == 130
    return out.getvalue(), err.getvalue()


def test_a_watch_screen_is_cut_to_the_terminal_as_watch_does(monkeypatch: pytest.MonkeyPatch) -> None:
    shown, _ = _watch_once(monkeypatch, "xterm-256color")
    assert shown.startswith(CLEAR)
    lines = shown.removeprefix(CLEAR).rstrip("\n").split("\n")
    assert len(lines) <= 24  # a taller screen scrolled its header away
    assert all(cell_width(line) <= 80 for line in lines), [cell_width(line) for line in lines]  # a wider one wrapped
    assert lines[0].startswith("Every 0.01s: ")
    assert lines[2].startswith("NODE")
    assert lines[-1] == "… 10 more rows"  # 24 lines: header, blank, column header, 20 rows and this note
    assert lines[3].startswith("gpu-node-00")
    assert lines[-2].startswith("gpu-node-19")


def test_the_nodes_errors_stay_on_the_screen_under_the_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Written to stderr after a full screen, they scrolled it by their lines: the header went again."""
    shown, said = _watch_once(monkeypatch, "xterm", [NodeError("gpu-node-30", "refused", "refused the connection")])
    lines = shown.removeprefix(CLEAR).rstrip("\n").split("\n")
    assert len(lines) <= 24
    assert lines[0].startswith("Every ")
    assert any("gpu-node-30" in line and "refused" in line for line in lines[-3:]), lines[-3:]
    assert said == ""


def test_a_watch_into_a_pipe_keeps_every_row_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("LINES", "24")
    monkeypatch.setenv("COLUMNS", "80")
    calls: list[int] = []

    def produce() -> tuple[list[dict[str, Any]], list[NodeError]]:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return ROWS, []

    show_listing(produce, COLUMNS, OutputFormat.table, False, watch=True, interval=0.01)
    lines = out.getvalue().splitlines()
    assert len(lines) == 33
    assert max(cell_width(line) for line in lines) > 80


def test_under_term_dumb_watch_prints_each_redraw_under_its_header_without_escapes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shown, _ = _watch_once(monkeypatch, "dumb", rounds=2)
    assert "\x1b" not in shown
    assert shown.count("Every 0.01s: ") == 2
    assert "\n\nEvery 0.01s: " in shown  # a blank line between redraws
    assert shown.count("gpu-node-29") == 2  # nothing cut: it scrolls, as a log


def _pty_stream(columns: int) -> tuple[io.TextIOWrapper, int]:
    """A text stream on the slave side of a new pseudo-terminal `columns` wide, and its master's descriptor."""
    master, slave = os.openpty()
    _resize(slave, columns)
    return open(slave, "w", encoding="utf-8"), master


def _resize(fd: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))


def _written(master: int) -> str:
    return os.read(master, 65536).decode()


def test_the_progress_line_is_cut_to_the_terminal_width_read_at_each_update() -> None:
    """`\\r` goes back to the start of the last physical line only: a wrapped line stayed, one per update."""
    stream, master = _pty_stream(30)
    try:
        now = [0.0]
        line = ProgressLine("asking the nodes", stream, clock=lambda: now[0], unit="nodes done")
        now[0] += DELAY_S
        line(840, 2000)
        first = _written(master)
        _resize(stream.fileno(), 20)
        line(860, 2000)
        second = _written(master)
    finally:
        stream.close()
        os.close(master)
    assert first == "\r" + "asking the nodes: 42% of 2,000 nodes done"[:29]  # the last column would wrap
    assert second == "\r" + "asking the nodes: 43% of 2,000 nodes done"[:19]


def test_no_progress_line_under_term_dumb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "dumb")
    with replay_progress("replaying fifo", quiet=False, stream=_Terminal()) as progress:
        assert progress is None
    monkeypatch.setenv("TERM", "xterm")
    with replay_progress("replaying fifo", quiet=False, stream=_Terminal()) as progress:
        assert progress is not None


def _demo_headless_stderr(term: str, tmp_path: Any) -> str:
    """What `demo --headless` writes on a terminal stderr under `term` (stdout a pipe)."""
    import subprocess

    master, slave = os.openpty()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "factoryctl",
            "demo",
            "--headless",
            "--duration",
            "2",
            "--interval",
            "0.2",
            "-o",
            "json",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "TERM": term, "HOME": str(tmp_path)},
        timeout=120,
        check=False,
    )
    os.close(slave)
    said = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        said += chunk
    os.close(master)
    assert proc.returncode == 0, said
    return said.decode(errors="replace")


def test_demo_headless_rewrites_no_line_under_term_dumb(tmp_path: Any) -> None:
    """Emacs's M-x compile showed `^M` before every `demo: 8/8 nodes up`."""
    assert "\rdemo: " in _demo_headless_stderr("xterm", tmp_path)
    assert "\r" not in _demo_headless_stderr("dumb", tmp_path).replace("\r\n", "\n")
