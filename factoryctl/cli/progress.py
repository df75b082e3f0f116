"""A progress line on stderr for what takes a while: replays, and asking a big fleet.

A 68,000-job trace replays for tens of seconds per policy; 2,000 nodes, hundreds of them not answering, take minutes.

Only on a terminal that moves its cursor (not TERM=dumb) and never under `--quiet`: a cron job or a pipe gets no
carriage returns in its logs. The line appears after half a second (a short replay shows nothing), is cut to the
terminal's width as it is then (a wrapped line is two, and a carriage return goes back to the start of the last one only: a
narrow terminal filled with one line per percent), and is wiped when the replay ends, however it ends, so the
results print on a clean line.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from factoryctl.cli.screen_fit import cut_to_width, moves_cursor, terminal_size

#: Seconds before the line first appears.
DELAY_S = 0.5


class ProgressLine:
    """Rewrites one stderr line with how many of the trace's jobs have been submitted to the replay so far."""

    def __init__(
        self, label: str, stream: TextIO, clock: Callable[[], float] = time.monotonic, unit: str = "jobs submitted"
    ) -> None:
        """Say `label` (e.g. "replaying default") on `stream`, once `DELAY_S` has passed on `clock`."""
        self.label = label
        self.unit = unit
        self.stream = stream
        self.clock = clock
        self.began = clock()
        self.shown = False

    def __call__(self, submitted: int, total: int) -> None:
        """Show the share done so far (of the trace's jobs submitted, of the nodes answered)."""
        if not self.shown and self.clock() - self.began < DELAY_S:
            return
        self.shown = True
        text = f"{self.label}: {submitted * 100 // max(total, 1)}% of {total:,} {self.unit}"
        columns = terminal_size(self.stream)[0]  # asked each time: the window may have been resized since
        self.stream.write("\r" + cut_to_width(text, columns - 1))  # the last column would wrap on some terminals
        self.stream.flush()

    def wipe(self) -> None:
        """Erase the line if it was shown."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


@contextmanager
def replay_progress(
    label: str, quiet: bool, stream: TextIO | None = None, unit: str = "jobs submitted"
) -> Iterator[ProgressLine | None]:
    """A `ProgressLine` on stderr when it is a terminal, not TERM=dumb, and no `--quiet` (else None), wiped at the end."""
    out = sys.stderr if stream is None else stream
    if quiet or not out.isatty() or not moves_cursor():
        yield None
        return
    line = ProgressLine(label, out, unit=unit)
    try:
        yield line
    finally:
        line.wipe()
