"""Job traces (docs/scheduler.md, "The trace") parsed and checked before a replay: a bad row is a sentence, not a crash.

`job_id,submit_time_s,duration_s,num_gpus` are required; `num_nodes,gpus_per_node,priority,walltime_s` are optional
and extra columns are ignored (`parse_trace` names them, so the CLI can say the replay does not model them). Column
names are read case-insensitively. A row must not have more fields than the header, a header must not name a
column twice, and numbers are ASCII: otherwise a shifted or mistyped row could replay as a different job.
The caller reads the file; this module only sees its lines, one at a time (no IO in the core).
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factoryctl.errors import UsageError
from factoryctl.textfile import csv_row_is_empty, exact_number

if TYPE_CHECKING:
    from factoryctl.scheduler.tracejobs import TraceJobs

REQUIRED = ("job_id", "submit_time_s", "duration_s", "num_gpus")
#: The optional columns the replay reads; any other column is ignored.
OPTIONAL = ("num_nodes", "gpus_per_node", "priority", "walltime_s")

#: The largest time a trace may give, in seconds (about 3,000 years): beyond it sums lose whole seconds, and at
#: 1e308 they overflow to infinity, so a larger value is a broken trace rather than a long job.
MAX_SECONDS = 1e11
#: The largest GPU or node count a trace row may give (a million GPUs is beyond any cluster we simulate).
MAX_COUNT = 1_000_000
#: The largest priority a trace row may give: a unit is worth a day of waiting, so this is 2,700 years of it.
MAX_PRIORITY = 1_000_000

#: The columns, said in the hints themselves: a wheel install has no docs/ to point at.
_COLUMNS = f"{','.join(REQUIRED)} (optional: {','.join(OPTIONAL)}), times in seconds"
_FORMAT_HINT = f"a trace has the header {_COLUMNS}."
_QUOTE_HINT = "close the quote, or drop it: a field needs quotes only when it holds a comma."
_SHAPE_HINT = "num_gpus must equal num_nodes x gpus_per_node; leave gpus_per_node empty to derive it from num_nodes."


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One trace row. `walltime_s` is the duration when the trace gives none (exact estimates).

    `gpus_per_node` is the trace's own gang shape: its `gpus_per_node` column, or `num_gpus / num_nodes` when only
    `num_nodes` is given; `None` lets the scheduler choose.
    """

    job_id: str
    submit_s: float
    duration_s: float
    num_gpus: int
    gpus_per_node: int | None = None
    priority: int = 0
    walltime_s: float = 0.0

    @property
    def runtime_s(self) -> float:
        """How long the job really runs: its duration, cut at its walltime (the executor kills it there)."""
        return min(self.duration_s, self.walltime_s) if self.walltime_s > 0 else self.duration_s


def _number(row: dict[str, str], column: str, where: str) -> float:
    text = (row.get(column) or "").strip()
    if not text.isascii():  # Python reads full-width and other Unicode digits ('８' is 8): the docs say ASCII
        raise UsageError(
            f"{where}: {column} is not a number: {text!r}", "write numbers with ASCII digits (1000, 1e3, 0.5)."
        )
    try:
        if "_" in text:  # Python reads 1_000 as 1000; a trace from elsewhere never means that
            raise ValueError(text)
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: {column} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{where}: {column} is not a finite number: {text!r}")
    return value


def _optional(row: dict[str, str], column: str, where: str) -> float | None:
    if not (row.get(column) or "").strip():
        return None
    return _number(row, column, where)


def _seconds(value: float, column: str, where: str) -> float:
    """A time in seconds: not negative and not absurdly large."""
    if value < 0:
        raise UsageError(f"{where}: {column} is {exact_number(value)} but must not be negative")
    if value > MAX_SECONDS:
        raise UsageError(
            f"{where}: {column} is {exact_number(value)}, more than the {MAX_SECONDS:g} seconds (about 3,000 years) a trace may"
            " give",
            f"{column} is in seconds; check the column's unit and the row's value.",
        )
    return value


def _count(value: float, column: str, where: str) -> int:
    if value != int(value) or value < 1:
        raise UsageError(f"{where}: {column} must be a whole number of at least 1, not {exact_number(value)}")
    if value > MAX_COUNT:
        raise UsageError(
            f"{where}: {column} is {exact_number(value)}, more than the {MAX_COUNT:,} a trace may give",
            f"{column} counts GPUs or nodes; check the row's value.",
        )
    return int(value)


def _gpus_per_node(num_gpus: int, per_node: float | None, nodes: float | None, where: str) -> int | None:
    """The trace's gang shape as GPUs per node, checked against num_gpus and num_nodes (None: the scheduler picks)."""
    gpus_per_node = None if per_node is None else _count(per_node, "gpus_per_node", where)
    if nodes is not None:
        num_nodes = _count(nodes, "num_nodes", where)
        if num_gpus < num_nodes:
            raise UsageError(
                f"{where}: num_gpus {num_gpus} is fewer than num_nodes {num_nodes}",
                "every node of a gang needs at least one GPU; fix num_gpus or num_nodes.",
            )
        if gpus_per_node is not None and num_nodes * gpus_per_node != num_gpus:
            raise UsageError(
                f"{where}: num_nodes {num_nodes} x gpus_per_node {gpus_per_node} is {num_nodes * gpus_per_node},"
                f" not num_gpus {num_gpus}",
                _SHAPE_HINT,
            )
        if num_gpus % num_nodes:
            raise UsageError(
                f"{where}: num_gpus {num_gpus} does not split evenly over num_nodes {num_nodes}", _SHAPE_HINT
            )
        return num_gpus // num_nodes
    if gpus_per_node is not None and (num_gpus % gpus_per_node or gpus_per_node > num_gpus):
        raise UsageError(
            f"{where}: num_gpus {num_gpus} does not split into {gpus_per_node} GPUs per node",
            "num_gpus must be a multiple of gpus_per_node.",
        )
    return gpus_per_node


def parse_row(row: dict[str, str], where: str) -> TraceJob:
    """Check and convert one row; `where` (file:line) prefixes every error."""
    job_id = (row.get("job_id") or "").strip()
    if not job_id:
        raise UsageError(f"{where}: job_id is empty")
    submit = _seconds(_number(row, "submit_time_s", where), "submit_time_s", where)
    duration = _seconds(_number(row, "duration_s", where), "duration_s", where)
    num_gpus = _count(_number(row, "num_gpus", where), "num_gpus", where)
    gpus_per_node = _gpus_per_node(
        num_gpus, _optional(row, "gpus_per_node", where), _optional(row, "num_nodes", where), where
    )
    walltime = _optional(row, "walltime_s", where)
    if walltime is not None:
        if walltime <= 0:
            raise UsageError(f"{where}: walltime_s is {exact_number(walltime)} but must be positive")
        _seconds(walltime, "walltime_s", where)
    priority = _optional(row, "priority", where) or 0.0
    if priority != int(priority) or abs(priority) > MAX_PRIORITY:
        raise UsageError(
            f"{where}: priority must be an integer from {-MAX_PRIORITY:,} to {MAX_PRIORITY:,}, not {exact_number(priority)}",
            "use whole numbers (higher runs sooner; one unit is worth a day of waiting).",
        )
    return TraceJob(job_id, submit, duration, num_gpus, gpus_per_node, int(priority), walltime or duration)


def parse_trace(lines: Iterable[str], source: str = "trace", ignored: list[str] | None = None) -> TraceJobs:
    """Parse a whole trace; missing columns, bad values, duplicate ids and an empty trace are usage errors.

    `lines` is read once, a line at a time (a file's lines as they arrive: only the jobs are kept). Errors name
    `source` and the line (blank lines counted), and carry a hint. So does a line the csv module cannot read at all
    (a field over its 128 KiB limit), a row with more fields than the header, a header that names a column twice and
    a quote never closed. A line of only spaces, or of only commas, is skipped as an empty one is. `ignored`, if
    given, receives the header's columns the replay does not read, unnamed ones as `column 5 (no name)`.
    The jobs are kept in columns (`TraceJobs`), not as a `TraceJob` each.
    """
    feed = _RowLines(lines)
    reader = csv.DictReader(feed)
    try:
        return _parse(reader, feed, source, ignored)
    except csv.Error as error:
        raise UsageError(
            f"{source}:{reader.line_num + 1}: cannot read this line as CSV ({error})", _FORMAT_HINT
        ) from None


class _RowLines:
    """The trace's lines as the csv reader takes them, keeping those of the current row and looking one line ahead.

    A row's own lines (`row`, several when a quoted field holds line breaks) let a check quote what it was given;
    the look-ahead says whether the row ended the input (`ended`), where a quote left open would have taken it.
    """

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self._next = next(self._lines, None)
        self.row: list[str] = []

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        line = self._next
        if line is None:
            raise StopIteration
        self._next = next(self._lines, None)
        self.row.append(line)
        return line

    @property
    def ended(self) -> bool:
        """Whether every line has been read."""
        return self._next is None


def _unread_columns(header: list[str], written: list[str]) -> list[str]:
    """The header's columns the replay does not read, named as the file writes them (`User`, not `user`).

    A column the header leaves unnamed (`job_id,...,num_gpus,`) is `column 5 (no name)`: its values are dropped too.
    """
    unread = []
    for number, (name, given) in enumerate(zip(header, written, strict=True), 1):
        if not name:
            unread.append(f"column {number} (no name)")
        elif name not in REQUIRED + OPTIONAL:
            unread.append(given.strip().lstrip("\ufeff"))
    return unread


def _parse(reader: csv.DictReader[str], feed: _RowLines, source: str, ignored: list[str] | None) -> TraceJobs:
    """`parse_trace` on an open reader reading `feed`."""
    from factoryctl.scheduler.tracejobs import TraceJobs  # here: it builds on `TraceJob`, defined above

    first = next(reader.reader, None)
    while first is not None and not any(field.strip() for field in first):  # blank lines before the header
        first = next(reader.reader, None)
    header = _column_names(first or [])
    if not any(header):
        raise UsageError(
            f"{source}: the trace is empty (missing column(s) {', '.join(REQUIRED)})",
            f"a trace starts with the header {_COLUMNS}, then has one row per job.",
        )
    _check_header(header, f"{source}:{reader.reader.line_num}")
    if ignored is not None:
        ignored.extend(_unread_columns(header, first or []))
    reader.fieldnames = header
    jobs = TraceJobs()
    seen: set[str] = set()
    while True:
        feed.row = []
        row = next(reader, None)
        if row is None:
            break
        raw = feed.row
        if not raw[-1].strip() and not "".join(raw).strip():  # spaces only: an empty line, as the csv module skips
            continue
        if csv_row_is_empty(row):  # `,,,`: a spreadsheet's empty row, as an empty line
            continue
        where = f"{source}:{reader.line_num}"
        _check_shape(row, raw, len(header), where, feed.ended)
        job = parse_row(row, where)
        if job.job_id in seen:
            raise UsageError(f"{where}: job_id {job.job_id!r} appears twice", "give every job its own job_id.")
        seen.add(job.job_id)
        jobs.append(job)
    if not jobs:
        raise UsageError(
            f"{source}: the trace has no jobs, only a header",
            "add one row per job under the header: its job_id, submit time and duration in seconds, GPU count.",
        )
    return jobs


def _column_names(fields: list[str]) -> list[str]:
    """A header's fields as column names: lower case, without blanks or a byte-order mark the caller did not strip."""
    header = [name.strip().lower() for name in fields]
    if header:
        header[0] = header[0].lstrip("\ufeff").strip()
    return header


def _check_header(header: list[str], where: str) -> None:
    """Refuse a header that lacks a required column, or names one twice (its second value would replace the first).

    `where` is the file and the header's line.
    """
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        separated = len(header) == 1 and any(mark in header[0] for mark in ";\t|")
        hint = "the trace is comma-separated: " + _FORMAT_HINT if separated else _FORMAT_HINT
        raise UsageError(f"{where}: missing column(s) {', '.join(missing)}", hint)
    counts = Counter(name for name in header if name)  # counted once: a 40k-column header took 22 s
    repeated = next((name for name, count in counts.items() if count > 1), None)
    if repeated is not None:
        raise UsageError(
            f"{where}: the header names column {repeated} twice",
            "give each column once (names are read case-insensitively).",
        )


def _check_shape(row: dict[str | None, object], raw: list[str], columns: int, where: str, last: bool) -> None:
    """Refuse a row whose quote never closes (it swallowed the rest of the file), with too many fields, or too few.

    `raw` is the row's text, `where` the file and line it ends on, `last` whether it ends the file (a quote left
    open runs to the end of the file, so only the last row can have one). Extra fields that are all empty (a
    trailing comma) pass, as does a row that ends before optional columns only; one that ends before a required
    column is refused as short, rather than its column as "not a number: ''".
    """
    if last and any('"' in text for text in raw):
        try:
            list(csv.reader(raw, strict=True))
        except csv.Error as error:
            if "unexpected end of data" in str(error):
                source, line = where.rsplit(":", 1)
                start = int(line) - len(raw) + 1 + next(i for i, text in enumerate(raw) if text.strip())
                raise UsageError(
                    f"{source}:{start}: a quote opened on this line is never closed (the row ran to the end of the"
                    " file)",
                    _QUOTE_HINT,
                ) from None
    extra = row.get(None)
    if isinstance(extra, list) and any(str(field).strip() for field in extra):
        raise UsageError(
            f"{where}: the row has {columns + len(extra)} fields but the header names {columns} columns",
            'remove the extra fields, or quote a field that holds a comma ("a,b").',
        )
    missing = [column for column in REQUIRED if row.get(column) is None]  # the row ended before them
    if missing:
        given = next((fields for fields in csv.reader(raw) if fields), [])
        verb = "is" if len(missing) == 1 else "are"
        raise UsageError(
            f"{where}: the row has {len(given)} field{'s' * (len(given) != 1)} but the header names {columns}"
            f" columns, so {', '.join(missing)} {verb} missing",
            "give every row a field for each column of the header, in its order (an empty one is still a comma).",
        )
