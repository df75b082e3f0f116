"""Reading a power data file (curves, prices) from CSV, so that every error names the file and the line.

The files differ only in their columns and in how one row becomes a value; opening, decoding (UTF-8, else a usage
error at file:line), the header check (names read case-insensitively, as a trace's), the refusal of a file with no
rows or of a row shorter or longer than its header, numbers (`parse_number`, whose errors name the field and
value), and the `file:line` prefix on a bad row are the same for all and live here once. A row longer than its
header is refused rather than cut: it is almost always an unquoted decimal comma (`45,67`) or thousands separator
(`1,234`), and dropping the extra field would silently misread the number.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

from factoryctl.errors import UsageError
from factoryctl.model.telemetry import escape_controls
from factoryctl.textfile import csv_row_is_empty, read_utf8

T = TypeVar("T")

#: The hint for a number written with a comma, in a field or split across two fields.
DECIMAL_POINT_HINT = (
    "write numbers with a decimal point and no thousands separator: 45.67, not 45,67; 1234.5, not 1,234.5."
)


class FieldError(ValueError):
    """A bad field of a row, with its own hint (None: the file's column hint, as for other errors)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        """Keep the hint next to the message."""
        super().__init__(message)
        self.hint = hint


_ASCII_BLANKS = " \t\r\n"
#: The hint for a number Python would read but the docs do not allow (`1_000`, full-width `１０`).
ASCII_NUMBER_HINT = "write numbers with ASCII digits, a decimal point and no separator: 1000, 1e3, 0.5."


def parse_number(text: str, field: str) -> float:
    """A field as a float, or a `FieldError` that names the field and its value (never Python's own wording).

    Python's own extras are refused, as a trace's numbers are (scheduler/trace.py): `1_000` (which `float` reads
    as 1000) and non-ASCII digits (`１０` is 10 to `float`). A file from elsewhere never means either.
    """
    if "_" in text or not text.isascii():  # stripped of ASCII blanks only: a no-break space must show (as '\xa0')
        raise FieldError(f"{field} is {text.strip(_ASCII_BLANKS)!r}, which is not a number", ASCII_NUMBER_HINT)
    try:
        return float(text)
    except ValueError:
        hint = DECIMAL_POINT_HINT if "," in text else None
        raise FieldError(f"{field} is {text.strip()!r}, which is not a number", hint) from None


def read_csv_rows(
    path: Path,
    columns: Sequence[str],
    parse_row: Callable[[dict[str, str]], T],
    file_kind: str,
    row_kind: str,
    columns_hint: str,
    text: str | None = None,
) -> list[T]:
    """Each row of `path` through `parse_row`; a missing column or a row it rejects is a `UsageError` at file:line.

    `file_kind` and `row_kind` name the file and its rows in messages ("curve file", "curve row"); `columns_hint` is
    the hint when a column is missing or a row is bad. `text` is the file's contents when already read (from stdin:
    `path` then only names it, `stdin`).
    """
    kinds = (file_kind, row_kind, columns_hint)
    if text is None:  # the header is checked as soon as its line is read: an endless `yes` fails at line 1
        check = partial(_check_header_line, path, columns, kinds)
        text = read_utf8(path, file_kind, "check the path and that the file is readable.", check)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _rows(path, reader, columns, parse_row, kinds)
    except csv.Error as exc:  # a line the csv module cannot read at all (a field over its 128 KiB limit)
        raise UsageError(
            f"{path}:{reader.line_num + 1}: cannot read this line as CSV ({exc})", hint=columns_hint
        ) from None


def _header(path: Path, names: Sequence[str], file_kind: str) -> list[str]:
    """The header's column names as the rows are read by: stripped and lower-cased, as a trace's are.

    `Timestamp_UTC` is `timestamp_utc`; a column then named twice is refused, as its second value would silently
    replace the first.
    """
    header = [name.strip().lower() for name in names]
    counts = Counter(name for name in header if name)  # counted once: a 40k-field line took seconds per field
    repeated = next((name for name, count in counts.items() if count > 1), None)
    if repeated is not None:
        raise UsageError(
            f"{path}:1: the {file_kind}'s header names column {repeated} twice",
            "give each column once (names are read case-insensitively).",
        )
    return header


def _checked_header(path: Path, names: Sequence[str], columns: Sequence[str], kinds: tuple[str, str, str]) -> list[str]:
    """The header as `_header` reads it; one lacking a column the rows need is refused, showing the header found."""
    file_kind, _, columns_hint = kinds
    header = _header(path, names, file_kind)
    missing = [c for c in columns if c not in header]
    if missing:
        found = ",".join(names)
        found = escape_controls(found if len(found) <= 80 else found[:77] + "...")
        raise UsageError(
            f"{path}:1: the {file_kind} lacks column(s) {', '.join(missing)}; its header is {found!r}",
            hint=columns_hint,
        )
    return header


def header_check(
    path: Path, columns: Sequence[str], file_kind: str, row_kind: str, columns_hint: str
) -> Callable[[str], None]:
    """The check of a first line that `read_csv_rows` makes of a file, for text read elsewhere (stdin's)."""
    return partial(_check_header_line, path, columns, (file_kind, row_kind, columns_hint))


def _check_header_line(path: Path, columns: Sequence[str], kinds: tuple[str, str, str], line: str) -> None:
    """`_checked_header` on a file's first line as soon as it is read (a quoted header waits for the whole file).

    `line` runs to the first LF; a CR before it ends the line too, as the csv module reads the whole file (a Mac
    header pasted onto a Unix body). A line the csv module cannot read is refused at line 1, as `read_csv_rows` does.
    """
    if '"' not in line:
        try:
            names = next(csv.reader([line.partition("\r")[0]]), [])
        except csv.Error as exc:  # a field over the csv module's 128 KiB limit
            raise UsageError(f"{path}:1: cannot read this line as CSV ({exc})", hint=kinds[2]) from None
        _checked_header(path, names, columns, kinds)


def _rows(
    path: Path,
    reader: csv.DictReader[str],
    columns: Sequence[str],
    parse_row: Callable[[dict[str, str]], T],
    kinds: tuple[str, str, str],
) -> list[T]:
    """`read_csv_rows` on an open reader; `kinds` is (file_kind, row_kind, columns_hint)."""
    file_kind, row_kind, columns_hint = kinds
    if reader.fieldnames is None:
        raise UsageError(f"{path}: the {file_kind} is empty (not even a header line)", hint=columns_hint)
    reader.fieldnames = _checked_header(path, reader.fieldnames, columns, kinds)
    values: list[T] = []
    for row in reader:
        if csv_row_is_empty(row):  # `,,,` or spaces: a spreadsheet's empty row, skipped as the csv module skips ""
            continue
        short = [c for c in columns if row.get(c) is None]  # DictReader fills the fields a short row lacks with None
        if short:
            raise UsageError(
                f"{path}:{reader.line_num}: the {row_kind} has no {', '.join(short)} field (fewer fields than the "
                "header)",
                hint=columns_hint,
            )
        extra = row.get(None)  # DictReader puts the fields beyond the header under None
        if extra and any(field.strip() for field in extra):  # a trailing comma (empty fields) is harmless
            raise UsageError(
                f"{path}:{reader.line_num}: the {row_kind} has {len(reader.fieldnames or []) + len(extra)} fields but"
                f" the header has {len(reader.fieldnames or [])}, so a value holds an unquoted comma",
                hint=DECIMAL_POINT_HINT,
            )
        if (row.get("") or "").strip():  # a header ending in a comma names an empty column: `0,00` filled it
            raise UsageError(
                f"{path}:{reader.line_num}: the {row_kind} has a value under the header's empty column, so a value"
                " holds an unquoted comma",
                hint=DECIMAL_POINT_HINT,
            )
        try:
            values.append(parse_row(row))
        except FieldError as exc:
            raise UsageError(
                f"{path}:{reader.line_num}: bad {row_kind}: {exc}", hint=exc.hint or columns_hint
            ) from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{path}:{reader.line_num}: bad {row_kind}: {exc}", hint=columns_hint) from exc
    if not values:
        raise UsageError(f"{path}:{reader.line_num + 1}: the {file_kind} has a header but no rows", hint=columns_hint)
    return values
