r"""What a terminal can show: its size now, whether it moves its cursor, and text cut to fit it.

A line wider than the terminal wraps onto the next, so `\r\x1b[K` (which wipes one physical line) left a progress
line per percent on a narrow screen, and a `--watch` table wider or taller than the screen scrolled its own header
away. TERM=dumb (Emacs's M-x shell and M-x compile, some CI consoles) says the terminal has no cursor control, as git
and less read it: no `\x1b[K`, no clearing, no full screen there.
"""

from __future__ import annotations

import os
from typing import TextIO

from factoryctl.cli.cells import cell_width

#: The size assumed when neither the stream's terminal nor COLUMNS/LINES say one (as `shutil.get_terminal_size`).
FALLBACK_SIZE = (80, 24)


def moves_cursor() -> bool:
    """Whether the terminal understands cursor control: not under TERM=dumb."""
    return os.environ.get("TERM", "") != "dumb"


def terminal_size(stream: TextIO) -> tuple[int, int]:
    """(columns, lines) of the terminal `stream` writes to, asked now (a resize since shows); at least 1 x 1.

    A stream that is no terminal's (a test's capture) takes COLUMNS and LINES from the environment, else 80x24.
    """
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, lines = size.columns, size.lines
    except (AttributeError, OSError, ValueError):
        columns, lines = _from_environment("COLUMNS", FALLBACK_SIZE[0]), _from_environment("LINES", FALLBACK_SIZE[1])
    if columns <= 0 or lines <= 0:  # a pty nobody sized reports 0x0
        columns, lines = FALLBACK_SIZE
    return columns, lines


def _from_environment(name: str, fallback: int) -> int:
    try:
        return int(os.environ.get(name, ""))
    except ValueError:
        return fallback


def cut_to_width(text: str, columns: int) -> str:
    """`text` (one line) cut to `columns` terminal columns, a wide character that would straddle the edge left out."""
    if cell_width(text) <= columns:
        return text
    kept, used = [], 0
    for char in text:
        width = cell_width(char)
        if used + width > columns:
            break
        kept.append(char)
        used += width
    return "".join(kept)


def fit_screen(lines: list[str], kept_below: list[str], columns: int, rows: int, ellipsis: str = "…") -> str:
    """`lines`, then `kept_below`, each cut to `columns`, in `rows` lines at most; no newline after the last line.

    As watch(1) does: what does not fit is cut, never wrapped or scrolled, so the first lines (the `Every` header,
    the column header) stay. Rows of `lines` go first, their last line saying `… N more rows`; `kept_below` (the
    nodes' errors) keeps up to half the screen. `ellipsis` is `...` for a stdout that cannot write `…`. Without a newline after the last line a full screen does not scroll.
    """
    below = kept_below[: rows // 2]
    room = max(rows - len(below), 1)
    if len(lines) > room:
        hidden = len(lines) - (room - 1)
        lines = [*lines[: room - 1], f"{ellipsis} {hidden} more rows"]
    return "\n".join(cut_to_width(line, columns) for line in [*lines, *below])
