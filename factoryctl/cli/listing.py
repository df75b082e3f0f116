"""Printing a listing the same way everywhere: output form, per-node errors on stderr, exit code, `--watch`.

`--watch` redraws in place on a terminal; off one its redraws are a stream (JSON lines, `---` YAML documents, CSV
under one header, tables under timestamped headers), so a log or a pipe to a parser keeps every snapshot.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from factoryctl.cli.render import (
    Column,
    OutputFormat,
    dump_yaml,
    emit,
    escaped_rows,
    listing_document,
    pause_while_read,
    render_csv,
    render_listing,
    report_node_errors,
    stdout_takes_unicode,
)
from factoryctl.cli.screen_fit import fit_screen, moves_cursor, terminal_size
from factoryctl.errors import ExitCode, NodeError, most_severe
from factoryctl.transport.hints import KIND_HINTS

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.telemetry.poll import PollResult

#: One hint per error kind, printed once under the per-node lines of errors that carry none of their own: the
#: kinds' hints of the one table (transport/hints.py), said of no node in particular.
ERROR_HINTS = {kind: hint.replace(" {node}", "") for kind, hint in KIND_HINTS.items()}

Producer = Callable[[], tuple[Sequence[dict[str, Any]], Sequence[NodeError]]]


def asked(config: FactoryConfig, nodes: Sequence[NodeSpec], timeout: float, fanout: int, quiet: bool) -> PollResult:
    """The nodes' current samples (`current_samples`), with a progress line on a terminal while they are asked.

    A big fleet with unreachable nodes takes minutes; the line ("asking the nodes: 42% of 2,000 nodes done")
    appears after half a second, never under -q or off a terminal, and is wiped before the listing prints.
    """
    from factoryctl.cli.progress import replay_progress
    from factoryctl.telemetry.current import current_samples

    with replay_progress("asking the nodes", quiet, unit="nodes done") as line:
        return current_samples(config, nodes, timeout, fanout, line)


def show_listing(
    produce: Producer,
    columns: Sequence[Column],
    output: OutputFormat,
    no_header: bool,
    watch: bool = False,
    interval: float = 2.0,
    fields: Sequence[str] = (),
) -> int:
    """Produce and print a listing once (or until Ctrl-C with --watch); return the exit status.

    `fields` are the items' JSON keys: the CSV header when there are no items (`render_csv`). Ctrl-C is how every
    `--watch` ends, and it ends it as Ctrl-C ends any command: 130 (docs/cli.md, Exit codes).
    """
    if not watch:
        items, errors = produce()
        emit(render_listing(items, [e.as_json() for e in errors], columns, output, no_header, fields))
        return _reported(errors)
    redraws = WatchRedraws(columns, output, no_header, interval, fields)
    try:
        while True:
            started = time.monotonic()  # redraws start every `interval` (a round that took longer: at once)
            redraws.show(*produce())
            pause_while_read(max(0.0, interval - (time.monotonic() - started)))
    except KeyboardInterrupt:
        if redraws.on_terminal:
            emit("\n")  # a fitted screen ends mid-line: the shell's prompt goes under it
        return int(ExitCode.INTERRUPTED)


def _reported(errors: Sequence[NodeError]) -> int:
    """Summarise the nodes' errors on stderr; the exit status they make."""
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in errors]))


class WatchRedraws:
    """Each `--watch` redraw as printed: in place on a terminal; off one (`> log`, a pipe), a stream a reader splits.

    On a terminal the screen is cleared and the `Every 2s: <time>Z` header drawn above the listing, all of it cut to
    the terminal's size as watch(1) does (a wrapped or scrolled screen lost its header), with the nodes' errors under
    it when stderr is that terminal too. TERM=dumb (no cursor control) is treated as no terminal. Off one, every
    redraw stays, so each is framed for its format: JSON one compact document per line (JSON lines), YAML one
    `---` document each (`yaml.safe_load_all`), CSV its header once with the rows of every redraw under it, and a
    table each redraw under its `Every` header, a blank line before the next, so a log says when each was taken.
    """

    def __init__(
        self, columns: Sequence[Column], output: OutputFormat, no_header: bool, interval: float, fields: Sequence[str]
    ) -> None:
        """Redraw `columns` in `output` every `interval` seconds; `fields` head a CSV with no items."""
        self._columns, self._output, self._no_header = columns, output, no_header
        self._interval, self._fields = interval, fields
        self.on_terminal = sys.stdout.isatty() and moves_cursor()
        self._drawn = 0

    def show(self, items: Sequence[dict[str, Any]], errors: Sequence[NodeError]) -> None:
        """Print the next redraw of `items`, then summarise the nodes' `errors` (on the screen when it is stderr's)."""
        as_json = [e.as_json() for e in errors]
        if not (self.on_terminal and sys.stderr.isatty()):
            emit(self.next(items, as_json))
            _reported(errors)
            return
        report = io.StringIO()
        with contextlib.redirect_stderr(report):
            _reported(errors)
        emit(self.next(items, as_json, report.getvalue().splitlines()))

    def next(self, items: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]], below: Sequence[str] = ()) -> str:
        """The text of the next redraw of `items` and the nodes' `errors`; on a terminal, `below` lines under it."""
        first, self._drawn = self._drawn == 0, self._drawn + 1
        output = self._output
        if self.on_terminal:
            listing = render_listing(items, errors, self._columns, output, self._no_header, self._fields)
            columns, rows = terminal_size(sys.stdout)
            lines = [watch_header(self._interval, time.time()), "", *listing.splitlines()]
            ellipsis = "…" if stdout_takes_unicode() else "..."
            return "\x1b[H\x1b[2J" + fit_screen(lines, list(below), columns, rows, ellipsis)
        if output in (OutputFormat.table, OutputFormat.wide):
            listing = render_listing(items, errors, self._columns, output, self._no_header, self._fields)
            return ("" if first else "\n") + watch_header(self._interval, time.time()) + "\n\n" + listing
        items, errors = escaped_rows(items, output), escaped_rows(errors, output)  # as render_listing's
        if output is OutputFormat.json:
            return json_line(listing_document(items, errors))
        if output is OutputFormat.yaml:
            return "---\n" + dump_yaml(listing_document(items, errors))
        return render_csv(items, first and not self._no_header, self._fields)


def json_line(document: object) -> str:
    """`document` as one line of JSON lines: no indent, full precision, UTF-8 (escaped when stdout cannot write it)."""
    import json

    return json.dumps(document, ensure_ascii=not stdout_takes_unicode(), allow_nan=False) + "\n"


def watch_header(interval: float, now: float) -> str:
    """`Every 2s: 2026-11-22T17:34:56Z`, the first line of a `--watch` redraw: UTC with Z, as every other time."""
    return f"Every {interval:g}s: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(now))}"
