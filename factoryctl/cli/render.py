"""Output forms shared by every listing: table, wide, json, yaml (kubectl style) and csv (nvidia-smi style).

A listing's JSON is `{"schema_version": 1, "items": [...], "errors": [...]}`; per-node errors are also summarised on
stderr whatever the output form, nodes that failed the same way folded onto one line. Tables round numbers for
reading; JSON keeps full precision. The options that choose a form (`-o`, `--no-header`) are in cli/options.py.
"""

from __future__ import annotations

import errno
import functools
import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import IO, Any

from factoryctl.cli.cells import as_written
from factoryctl.cli.cells import cell_width as cell_width  # re-exported: the followed events' table pads with it
from factoryctl.model.folding import fold as fold  # re-exported: the commands fold node names with it
from factoryctl.model.folding import without_address as without_address  # re-exported, as fold
from factoryctl.model.timefmt import iso_utc as iso_utc  # re-exported: the listings format their times with it

SCHEMA_VERSION = 1


class OutputFormat(str, Enum):
    """The `-o/--output` choices."""

    table = "table"
    wide = "wide"
    json = "json"
    yaml = "yaml"
    csv = "csv"


@dataclass(frozen=True)
class Column:
    """One table column: the item key, its header, and how to show a value."""

    key: str
    header: str
    wide_only: bool = False
    show: Callable[[Any], str] | None = None


def format_cell(value: object) -> str:
    """A readable cell: rounded numbers, '-' for null, comma-joined lists."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 or value.is_integer() else f"{value:.1f}"
    if isinstance(value, (list, tuple)):
        return ",".join(format_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def limit_watts(value: object) -> str:
    """A power limit as it was set: `100.4`, `287.5`, `300`; never rounded to `100` as a reading may be.

    The driver keeps limits in milliwatts, so three decimals are exact; trailing zeros go. JSON keeps the number.
    """
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return format_cell(value)


def render_table(items: Sequence[dict[str, Any]], columns: Sequence[Column], wide: bool, header: bool) -> str:
    r"""Plain aligned columns (no box drawing), so output greps and pipes well.

    A cell's control characters (a job id with a newline, a node's ESC sequence) are shown escaped (`\x0a`,
    `\x1b`): raw, they would break the row in two or drive the terminal. JSON and CSV keep the text as it is.
    """
    from factoryctl.model.telemetry import escape_controls

    shown = [c for c in columns if wide or not c.wide_only]
    writes = as_written()
    rows = [[writes(escape_controls((c.show or format_cell)(item.get(c.key)))) for c in shown] for item in items]
    if header:
        rows.insert(0, [c.header for c in shown])
    if not rows:
        return ""
    widths = [max(cell_width(row[i]) for row in rows) for i in range(len(shown))]
    return "".join(table_line(row, widths) for row in rows)


def table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    """One table line: `cells` padded to `widths` (terminal columns, `cell_width`), three spaces apart.

    The cells are given as stdout will write them (`as_written`, looked up once per table by the caller): `数据中心`
    is 8 columns, but `????` under an ASCII stdout, 4.
    """
    padded = (cell + " " * (width - cell_width(cell)) for cell, width in zip(cells, widths, strict=True))
    return "   ".join(padded).rstrip() + "\n"


def render_csv(items: Sequence[dict[str, Any]], header: bool, fields: Sequence[str] = ()) -> str:
    """The items as CSV, for scripts migrating from `nvidia-smi --query-gpu=... --format=csv`.

    The header is the items' JSON keys in order (keys only some items have come after, in first-seen order); one row
    per item of raw values (`csv_value`); RFC 4180 quoting by the csv module, lines ending in a newline as Unix tools
    expect. No items: the header alone, of the listing's `fields` (its JSON keys, as its items would have them), so
    a script's CSV parser still finds its columns; nothing when the fields are not given. It is `Utf8Text`: `emit`
    writes it in UTF-8 whatever the locale, so a row reads back as it was (CSV has no escape a `?` could stand for).
    """
    import csv
    import io

    keys = list(dict.fromkeys(key for item in items for key in item)) if items else list(fields)
    if not keys:
        return ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(keys)
    writer.writerows([csv_value(item.get(key)) for key in keys] for item in items)
    return Utf8Text(out.getvalue())


class Utf8Text(str):
    """Text `emit` writes in UTF-8 whatever stdout's encoding: CSV (`render_csv`); joined to other text, a str again."""

    __slots__ = ()


def csv_value(value: object) -> str:
    """One CSV cell: the JSON value unformatted; null empty, true/false, a list joined with `;`, an object as JSON.

    The JSON is UTF-8 as the CSV is (`render_csv`): the same bytes whatever the locale.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ";".join(csv_value(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return str(value)


def listing_document(items: Sequence[dict[str, Any]], errors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The JSON/YAML envelope of every listing."""
    return {"schema_version": SCHEMA_VERSION, "items": list(items), "errors": list(errors)}


def stdout_takes_unicode() -> bool:
    """Whether stdout's encoding writes any character (UTF-8 does; ASCII and latin-1 do not).

    When it does not (`PYTHONIOENCODING=ascii`, a latin-1 locale), JSON and YAML escape what it cannot write,
    losslessly, and tables use ASCII look-alikes: no command fails on its output's encoding.
    """
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    try:
        "\u2581\u2588\u00b0\u4e2d".encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True


def dump_json(document: object) -> str:
    """JSON as printed by every command: indented, full precision, UTF-8 (escaped when stdout cannot write it)."""
    return json.dumps(document, indent=2, ensure_ascii=not stdout_takes_unicode(), allow_nan=False) + "\n"


def dump_yaml(document: object) -> str:
    """YAML as printed by `-o yaml` (non-ASCII escaped when stdout cannot write it)."""
    from factoryctl.cli.yaml_output import yaml_text

    return yaml_text(document, stdout_takes_unicode())


def emit_document(document: Any, output: OutputFormat, as_text: Callable[[Any], str]) -> None:  # noqa: ANN401
    """Print a one-document command's result (`controller status`, `power status`): JSON, YAML, or its own text."""
    if output is OutputFormat.json:
        emit(dump_json(document))
    elif output is OutputFormat.yaml:
        emit(dump_yaml(document))
    else:
        emit(as_text(document))


def render_listing(
    items: Sequence[dict[str, Any]],
    errors: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    output: OutputFormat,
    no_header: bool = False,
    fields: Sequence[str] = (),
) -> str:
    """Render a listing in the requested form; `fields` (its items' JSON keys) head a CSV with no items.

    JSON, YAML and CSV get every string with its control characters escaped as the table's cells (`escaped_rows`).
    """
    if output in (OutputFormat.json, OutputFormat.yaml, OutputFormat.csv):
        items, errors = escaped_rows(items, output), escaped_rows(errors, output)
    if output is OutputFormat.json:
        return dump_json(listing_document(items, errors))
    if output is OutputFormat.yaml:
        return dump_yaml(listing_document(items, errors))
    if output is OutputFormat.csv:
        return render_csv(items, not no_header, fields)
    return render_table(items, columns, wide=output is OutputFormat.wide, header=not no_header)


def emit_listing_pages(
    pages: Iterable[Sequence[dict[str, Any]]],
    columns: Sequence[Column],
    output: OutputFormat,
    no_header: bool,
    fields: Sequence[str],
) -> None:
    """Print a listing with no errors, given page by page, as `render_listing` would print it whole.

    JSON, YAML and CSV are written as each page comes, so a listing of a million rows never holds them all and its
    first rows come out at once; every item has exactly the keys `fields`, in that order (the CSV header). A table
    needs every row for its column widths: `pages` is read twice, once for the widths, then to print.
    """
    if output not in (OutputFormat.json, OutputFormat.yaml, OutputFormat.csv):
        _emit_table_pages(pages, columns, output is OutputFormat.wide, not no_header)
        return
    if output is OutputFormat.csv:
        emit(render_csv([], not no_header, fields))  # the header, whether or not any row follows
        for page in pages:
            emit(render_csv(escaped_rows(page, output), False, fields))
        return
    dump = dump_json if output is OutputFormat.json else dump_yaml
    head, tail = _around_items(dump)
    between = ",\n" if output is OutputFormat.json else ""  # JSON's items end without their newline (`_items_text`)
    started = False
    for page in pages:
        emit((between if started else head) + _items_text(dump, escaped_rows(page, output)))
        started = True
    if not started:
        emit(dump(listing_document([], [])))  # `"items": []`, `items: []`
    else:
        emit(("\n" if output is OutputFormat.json else "") + tail)


def _emit_table_pages(
    pages: Iterable[Sequence[dict[str, Any]]], columns: Sequence[Column], wide: bool, header: bool
) -> None:
    """`render_table` of the items of `pages`, printed page by page: the widths from a first reading, then the rows."""
    from factoryctl.model.telemetry import escape_controls

    shown = [c for c in columns if wide or not c.wide_only]
    writes = as_written()

    def cells(page: Sequence[dict[str, Any]]) -> list[list[str]]:
        return [[writes(escape_controls((c.show or format_cell)(item.get(c.key)))) for c in shown] for item in page]

    def lines(rows: list[list[str]]) -> str:
        return "".join(table_line(row, widths) for row in rows)

    widths = [cell_width(c.header) if header else 0 for c in shown]
    for page in pages:
        for row in cells(page):
            widths = [max(width, cell_width(cell)) for width, cell in zip(widths, row, strict=True)]
    if header:
        emit(lines([[c.header for c in shown]]))
    for page in pages:
        emit(lines(cells(page)))


#: Stands for the items in a listing document rendered without them (`_around_items`): plain text in JSON and YAML.
_ITEMS_MARK = "items-go-here-0c5e"


def _around_items(dump: Callable[[object], str]) -> tuple[str, str]:
    """The text of a listing document (no errors) before its first item and after its last, as `dump` writes it."""
    from typing import cast

    text = dump(listing_document([cast("dict[str, Any]", _ITEMS_MARK)], []))
    at = text.index(_ITEMS_MARK)
    start, end = text.rindex("\n", 0, at) + 1, text.index("\n", at) + 1
    return text[:start], text[end:]


def _items_text(dump: Callable[[object], str], items: list[dict[str, Any]]) -> str:
    """`items` as they are written inside a listing document (`emit_listing_pages`).

    JSON's are indented one level more and end without a newline: a comma goes there when more pages follow. YAML
    writes the sequence of a mapping's key as it writes one on its own (PyYAML indents neither).
    """
    text = dump(items)
    if dump is dump_yaml:
        return text
    lines = text.split("\n")[1:-2]  # `[`, the items, `]` and the final newline's empty string
    return "\n".join(f"  {line}" for line in lines)


#: The C0 controls each output form keeps as they are: JSON and YAML escape them in their own way (`\u001b`, `\e`),
#: so a value reads back as it was; CSV quotes a field with a line break, tab or CR in it, and nothing else.
_C0_KEPT = {
    OutputFormat.json: frozenset(range(0x20)),
    OutputFormat.yaml: frozenset(range(0x20)),
    OutputFormat.csv: frozenset(map(ord, "\t\n\r")),
}


def escaped_rows(rows: Sequence[dict[str, Any]], output: OutputFormat) -> list[dict[str, Any]]:
    r"""`rows` (a listing's items or errors) with every string in them, keys too, escaped as the table's cells.

    Text from a node is escaped when it is stored, but a store written by an older factoryctl, or forged, holds it
    raw: a C1 control (U+009B is a whole CSI) or a bidi control (U+202E) went out in JSON and CSV as it was. The C0
    controls `output` shows safely itself are kept (`_C0_KEPT`). An escaped string escapes to itself (`\x1b`
    stays), and printable text, é and 中 included, is kept. One `str.translate` per string: an exec's 256 MiB of
    output (lines: not printable) is not walked character by character.
    """
    table = _escape_table(output)
    return [{_escaped(k, table): _escaped(v, table) for k, v in row.items()} for row in rows]


@functools.cache
def _escape_table(output: OutputFormat) -> dict[int, str]:
    """`str.translate`'s table: each control character `output` does not keep, to the table's escape of it."""
    from factoryctl.model.telemetry import BIDI_CONTROLS, escape_controls

    kept = _C0_KEPT.get(output, frozenset())
    controls = (*range(0x20), 0x7F, *range(0x80, 0xA0), *BIDI_CONTROLS)
    return {code: escape_controls(chr(code)) for code in controls if code not in kept}


def _escaped(value: Any, table: dict[int, str]) -> Any:  # noqa: ANN401 - any JSON value, returned as its kind
    """`value` with every string in it, at any depth, escaped (`escaped_rows`)."""
    if isinstance(value, str):
        return value if value.isprintable() else value.translate(table)
    if isinstance(value, dict):
        return {_escaped(k, table): _escaped(v, table) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_escaped(v, table) for v in value]
    return value


def report_node_errors(errors: Iterable[dict[str, Any]], hints: dict[str, str] | None = None) -> None:
    """Summarise per-node failures on stderr: one line per kind of failure, then each distinct hint once.

    Nodes that failed the same way (the same error kind and the same message once each node's own address, and its
    own name, are taken out) share one line under their folded node set, as exec gathers output
    (`factoryctl: d[1-4] (4): refused the connection`), so 2,000 refused nodes are one line, not 2,000. The
    address stays when the nodes' messages are identical (one node, or nodes behind one address); a name taken out
    is written as the folded set (`GPU 1 on n[3-4] is lost`); `-o json` keeps every node's own entry. An error's
    own hint (a `hint` key: `NodeError.as_report`) says best what to do about it; errors without one get their
    kind's hint from `hints`. A hint naming its node (`nodes trust n07`) is given once for every node it was given
    for, under their folded set (`nodes trust n[01-30]`). A message or hint is one line whatever a node put in it:
    its control characters, newline included, are written as visible escapes (`escape_controls`).
    """
    from factoryctl.model.telemetry import escape_controls

    alike: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (kind, message without the address) -> its nodes
    shown: dict[str, list[str]] = {}  # each hint with its node's name taken out -> the nodes it was given for
    for error in errors:
        node, message = str(error["node"]), escape_controls(str(error["message"]))
        message = message.removeprefix(f"{node}: ")  # not "{node}:": a node named as its host says "gpu07:22 ..."
        alike.setdefault((str(error["error"]), without_address(message)), []).append((node, message))
        hint = error.get("hint") or (hints or {}).get(str(error["error"]))
        if hint:
            shown.setdefault(_without_node(escape_controls(str(hint)), node), []).append(node)
    for nodes, message in _fold_named_alike(alike):
        names = fold(nodes) if len(nodes) == 1 else f"{fold(nodes)} ({len(nodes)})"
        sys.stderr.write(terminal_safe(f"factoryctl: {names}: {message}") + "\n")
    for hint, nodes in shown.items():
        sys.stderr.write(terminal_safe(f"hint: {hint.replace(chr(0), fold(nodes))}") + "\n")


def _fold_named_alike(alike: dict[tuple[str, str], list[tuple[str, str]]]) -> list[tuple[list[str], str]]:
    """(nodes, message) per line: the groups of `alike` whose one node's name is all that tells them apart, merged.

    `n3: GPU 1 on n3 is lost` and `n4: GPU 1 on n4 is lost` are one line, `n[3-4] (2): GPU 1 on n[3-4] is lost`.
    A group of several nodes already has one message for all of them and is kept whole: the name is only taken out
    of a lone node's message, so nodes whose messages were identical are never split by it (a node named `a`).
    """
    merged: dict[tuple[str, str], list[tuple[str, list[tuple[str, str]]]]] = {}
    for (kind, folded), failed in alike.items():
        unnamed = _without_node(folded, failed[0][0]) if len(failed) == 1 else folded
        merged.setdefault((kind, unnamed), []).append((folded, failed))
    lines: list[tuple[list[str], str]] = []
    for (_, unnamed), groups in merged.items():
        failed = [entry for _, group in groups for entry in group]
        nodes = [node for node, _ in failed]
        messages = {message for _, message in failed}
        if len(messages) == 1:
            message = messages.pop()
        elif len(groups) == 1:
            message = groups[0][0]
        else:
            message = unnamed.replace("\0", fold(nodes))
        lines.append((nodes, message))
    return lines


def report_node_tracebacks(kept: Iterable[tuple[list[str], str]]) -> None:
    """`--debug`: each traceback kept for nodes' unexpected failures (`fanout.NODE_TRACEBACKS`), once, on stderr.

    Nodes that failed with the same traceback share it under their folded node set.
    """
    for nodes, text in kept:
        names = fold(nodes) if len(nodes) == 1 else f"{fold(nodes)} ({len(nodes)})"
        sys.stderr.write(
            terminal_safe(f"factoryctl: {names}: traceback of the unexpected error:\n{text.rstrip()}") + "\n"
        )


def terminal_safe(text: str) -> str:
    """`text` for the terminal: control characters a node sent (ESC sequences, CR) escaped, our own line breaks kept.

    An error can quote a node (an agent's last words on stderr, a driver's message): printed raw, its ESC sequences
    could clear the screen or retitle the window, its CR overwrite the line before. The line breaks kept are those
    of text that is factoryctl's own (a `--debug` traceback under its heading); a node's message or hint is escaped
    whole, newline included, before it gets here (`report_node_errors`), so it cannot add a line of its own.
    """
    from factoryctl.model.telemetry import escape_controls

    return text if text.isprintable() else "\n".join(escape_controls(line) for line in text.split("\n"))


def _without_node(hint: str, node: str) -> str:
    """`hint` with the node's name marked (NUL), so the same hint for many nodes is given once for their set.

    (`record it with factoryctl nodes trust n07` for 30 nodes is one hint naming `n[01-30]`.) A name is only
    matched whole: not inside a longer name or word.
    """
    import re

    return re.sub(rf"(?<![\w.-]){re.escape(node)}(?![\w-])", "\0", hint)


def emit(text: str) -> None:
    """Write results to stdout (logs and progress go to stderr), all of them or BrokenPipeError (`write_whole`).

    `Utf8Text` (CSV) is written in UTF-8 whatever stdout's encoding; other text in stdout's own.
    """
    write_whole(sys.stdout, text, utf8=isinstance(text, Utf8Text))


def write_whole(stream: IO[str], text: str, utf8: bool = False) -> None:
    """Write `text` to the text `stream` and flush it: all of it, or an error (BrokenPipeError when its reader left).

    Under PYTHONUNBUFFERED=1 (`python -u`, usual in containers and service units) stdout's binary layer is the raw
    file: given more than a pipe holds as the pipe's reader goes away (`| head -c 10`), its write returns the count
    the pipe took, without an error, and the text layer ignores that count and drops the rest: a large output cut
    short ended 0 instead of 141. Here the rest is written again after a short write, which meets the EPIPE.
    """
    buffer = getattr(stream, "buffer", None)
    if buffer is None:  # an in-memory stream (a test's capture)
        stream.write(text)
        stream.flush()
        return
    stream.flush()  # what the text layer holds goes first
    encoding, errors = getattr(stream, "encoding", None), getattr(stream, "errors", None)
    if utf8:  # argv's undecodable bytes back as they came, as main() has stdout write them
        from factoryctl.cli.arguments import register_output_errors

        encoding, errors = "utf-8", register_output_errors()
    write_bytes_whole(buffer, text.encode(encoding or "utf-8", errors or "strict"))


def write_bytes_whole(buffer: IO[bytes], data: bytes) -> None:
    """Write `data` to the binary `buffer` and flush it, again from where a short write stopped (`write_whole`)."""
    view = memoryview(data)
    while view:
        written = buffer.write(view)
        if not written:  # never for a blocking file; a loop that cannot end otherwise
            raise OSError(errno.EIO, "the output took no more bytes")
        view = view[written:]
    buffer.flush()


def pause_while_read(seconds: float) -> None:
    """Sleep between two outputs of `--follow` or `--watch`; BrokenPipeError as soon as stdout's reader is gone.

    A pipe whose other end closed: `events --follow | head -2` ends when head does, as `tail -f | head` does, not at
    the next event, which may be hours away. The error boundary turns it into a quiet 141.
    """
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (an in-process test's capture)
        time.sleep(seconds)
        return
    poller = select.poll()
    poller.register(fd, 0)  # no events asked: only POLLERR (a pipe without a reader) and POLLHUP are reported
    if poller.poll(seconds * 1000):
        raise BrokenPipeError(f"stdout's reader went away (fd {fd})")
