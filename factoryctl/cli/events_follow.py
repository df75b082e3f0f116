"""`events --follow`: printing events as the store takes them, like `tail -f`, across a replaced store file.

Kept apart from `events` and `audit` (cli/events.py), which list a window once: the follow loop, its printer (each
event a line or document of its own, columns kept as wide as the first batch's) and the reattaching to a store file
deleted or replaced underneath are one concern, and `events.py` stays under the house's ~500 lines.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from factoryctl.cli.render import OutputFormat, emit, iso_utc

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from factoryctl.store.logs import EventMatch
    from factoryctl.store.rows import Event
    from factoryctl.store.sqlite import Store

#: Events read per query while following: a burst (2,000 nodes going down at once) is printed page by page.
FOLLOW_PAGE = 1000


def before_until(event: Event, end: float | None) -> bool:
    """Whether `event` is before `--until` (excluded, as the listing excludes it); every event without one."""
    return end is None or event.time < end


def follow_events(
    store: Store, written: int, match: EventMatch, printer: FollowedEventPrinter, every_s: float, end: float | None
) -> Store:
    """Print every event stored after the one numbered `written`, like `tail -f`, until Ctrl-C (exit 130) or `end`.

    Events are printed in the order the store took them (`Store.events_written`), which is not always their times':
    an XID carries the time its agent saw it, and events held while the store refused writes come when it takes
    them. A store file deleted or replaced underneath (`rm factory.db*`, a restored backup) is noticed at the next
    poll: following moves to the new file once one exists, from the last moment the old one was seen intact.
    With `end` (`--until`, a time ahead) the last poll comes once it is reached and takes the events stored by then
    that are before it; those at or after it are never printed, as a listing leaves them out. Returns the store
    followed last (to close).
    """
    import dataclasses
    import time

    from factoryctl.cli.render import pause_while_read

    intact_at = time.time()
    while end is None or time.time() < end:  # the poll after the pause that reaches `end` is the last
        pause_while_read(_pause_s(every_s, end))
        gone = store.replaced()
        if gone:
            found = _reattach(store, gone, every_s, end)
            if found is None:  # `end` came before a new store did
                return store
            store = found
            # ids start again in the new file: what it already holds is printed from when the old one was last seen
            catch_up = dataclasses.replace(match, since=intact_at)
            written = print_written(store, 0, catch_up, printer, end)
        intact_at = time.time()
        written = print_written(store, written, match, printer, end)
    return store


def _pause_s(every_s: float, end: float | None) -> float:
    """How long a follow pauses: `every_s`, or less to wake as `end` (`--until`) comes."""
    import time

    return every_s if end is None else max(0.0, min(every_s, end - time.time()))


def print_written(
    store: Store, after_id: int, match: EventMatch, printer: FollowedEventPrinter, end: float | None
) -> int:
    """Print the events that `match` (and are before `end`), stored after the one numbered `after_id`, page by page.

    Returns the last id read.
    """
    through = store.last_event_id()
    while after_id < through:
        page = store.events_written(after_id, through, match, FOLLOW_PAGE)
        printer.show([e for e in page if before_until(e, end)], header=False)
        if len(page) < FOLLOW_PAGE:
            break
        after_id = page[-1].id or through
    return max(through, after_id)


class FollowedEventPrinter:
    """How `events --follow` prints each batch: JSON lines (-o json), `---` YAML documents, CSV rows, or table rows.

    Each event is a document of its own, as it comes: a line of JSON, or a YAML document that `yaml.safe_load_all`
    reads.

    CSV names its columns once, before the first events (at once: a parser finds them even while none comes); a table
    prints its header even with no events, and keeps its columns as wide as the header's for every later batch (each
    widened once for a wider cell): wide enough for any time, severity and kind, and the followed nodes' names.
    """

    def __init__(self, output: OutputFormat, no_header: bool, node_names: Sequence[str] = ()) -> None:
        """Print in `output`; `no_header` leaves out the CSV header (the table's is the caller's `header`)."""
        from factoryctl.cli.events import EVENT_COLUMNS, EVENT_KINDS  # the listing's: the module that imports this

        self._output = output
        self._csv_header = not no_header
        self._columns = [c for c in EVENT_COLUMNS if output is OutputFormat.wide or not c.wide_only]
        widest = {
            "time": len(iso_utc(0.0)),
            "severity": len("warning"),
            "kind": max(map(len, EVENT_KINDS)),
            "node": max(map(len, node_names), default=0),
        }
        self._widths = [max(len(c.header), widest.get(c.key, 0)) for c in self._columns]

    def show(self, batch: list[Any], header: bool) -> None:
        """Print `batch` (oldest first); `header` asks a table for its header line."""
        from factoryctl.cli.events import event_fields
        from factoryctl.cli.listing import json_line
        from factoryctl.cli.render import dump_yaml, escaped_rows, render_csv

        output = self._output
        rows = escaped_rows([e.as_json() for e in batch], output)  # controls escaped, as render_listing's
        if output is OutputFormat.json:
            emit("".join(json_line(row) for row in rows))
        elif output is OutputFormat.yaml:
            emit("".join("---\n" + dump_yaml(row) for row in rows))
        elif output is OutputFormat.csv:
            text = render_csv(rows, self._csv_header, event_fields())
            if text:
                emit(text)
            self._csv_header = False
        elif batch or header:
            emit(self._table_rows(batch, header))

    def _table_rows(self, batch: list[Any], header: bool) -> str:
        """The table lines of `batch`, each column padded to the width kept since the first batch."""
        from factoryctl.cli.cells import as_written
        from factoryctl.cli.render import cell_width, format_cell, table_line
        from factoryctl.model.telemetry import escape_controls

        rows = [[c.header for c in self._columns]] if header else []
        items = [e.as_json() for e in batch]
        writes = as_written()  # padded as written: `????` under an ASCII stdout is 4 columns, not 8
        rows += [
            [writes(escape_controls((c.show or format_cell)(item.get(c.key)))) for c in self._columns] for item in items
        ]
        for row in rows:
            self._widths = [max(width, cell_width(cell)) for width, cell in zip(self._widths, row, strict=True)]
        return "".join(table_line(row, self._widths) for row in rows)


def _reattach(old: Store, gone: str, every_s: float, end: float | None) -> Store | None:
    """Close the store that was deleted or replaced and open the file now at its path, waiting for one to exist.

    None when `end` (`--follow --until`) is reached before one does.
    """
    import sys

    old.close()
    sys.stderr.write(f"factoryctl: the store {old.path} was {gone}; following the new one when it is there.\n")
    store = wait_for_store(old.path, every_s, end)
    if store is not None:
        sys.stderr.write(f"factoryctl: following the new store {old.path}.\n")
    return store


def wait_for_store(path: Path, every_s: float, end: float | None) -> Store | None:
    """The store at `path`, read-only, once it can be opened; None when `end` (`--follow --until`) comes first."""
    import time

    from factoryctl.cli.render import pause_while_read
    from factoryctl.store.sqlite import Store, StoreError

    while True:
        try:
            return Store(path, readonly=True)
        except StoreError:  # not there yet, or being created by a (restarted) controller
            if end is not None and time.time() >= end:
                return None
            pause_while_read(_pause_s(every_s, end))
