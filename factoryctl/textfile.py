"""Reading a user's text file (prices, curves, policies, traces): UTF-8, or a usage error naming file, line and byte.

A file saved as Latin-1 or carrying a stray byte is bad input, not a bug in factoryctl, so it must end as one
sentence with exit 2 (as `sched simulate --trace` says it) rather than on the internal-error path. Every loader
decodes through here so the sentence is the same whatever the file is. A compressed file (a trace as `.csv.gz`) is
said to be one, with how to pipe it in decompressed, rather than blamed for a stray byte; so is a UTF-16 file
(Windows' "Unicode text"), with how to convert it. A large input (a trace of millions of rows) is read as lines, each
handed on once complete (`text_lines`), with the same checks. `exact_number` echoes a value read from such a file in an error
without rounding it, so a range error never contradicts itself.

The YAML files among them (factory.yaml, power policies) share one more check, `first_repeated_key`: YAML lets a
repeated key silently replace the first, which hides a mistake. The walk is here once; each caller words the refusal
(a ConfigError for factory.yaml, a usage error for a policy file).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from yaml.error import Mark
    from yaml.nodes import Node

#: How the compressed formats a trace or a price export usually comes in start, and the tool that decompresses
#: each to stdout. bzip2's `BZh` could begin a text file, so its block size digit and first block's magic count too.
COMPRESSED_MAGIC = (
    (rb"\x1f\x8b", "gzip", "zcat"),
    (rb"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
    (rb"\xfd7zXZ\x00", "xz", "xzcat"),
    (rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)", "bzip2", "bzcat"),
    (rb"PK(?:\x03\x04|\x05\x06)", "zip", "unzip -p"),
)
#: The option that reads each kind of file from stdin (`-`), and a command that takes it, so a compressed file can
#: be piped in decompressed. The hint names the command being run (`sched explain`, `price show`) when there is
#: one (`_command_running`); this one only for a caller outside the CLI.
STDIN_OPTIONS = {"trace": ("--trace", "sched simulate"), "prices file": ("--prices", "power simulate")}
#: The tool that decompresses a pipe, where the file's tool cannot (`unzip` needs a file it can seek in).
_PIPE_TOOLS = {"unzip -p": "funzip"}


#: The most bytes a text input may hold. The largest real inputs are a trace of millions of jobs or years of
#: 5-minute prices, a few hundred MB at most; 1 GiB is far above them, yet stops a runaway input (`/dev/zero`,
#: `yes |`, a wrong path to a disk image) with a sentence before it fills memory and ends as MemoryError.
MAX_TEXT_BYTES = 1 << 30
#: How much is read at a time: the bytes are checked chunk by chunk (a bad byte is refused as soon as it arrives),
#: and Ctrl-C and SIGTERM take effect between chunks rather than after the whole input.
CHUNK_BYTES = 1 << 20
_UTF8_HINT = "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE), or remove the offending bytes."


def decode_utf8(data: bytes, source: str, what: str) -> str:
    """The text of a file's bytes: UTF-8, with or without a byte-order mark; anything else is a usage error.

    `source` names the file in the message (`prices.csv:3: ...`), `what` says what it is ("prices file"). A
    compressed file (gzip, zstd, xz, bzip2) is said to be one, with how to pipe it in decompressed.
    """
    _refuse_compressed(data, source, what)
    _refuse_wide_unicode(data, source, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _not_utf8(error, 0, source, what) from None


def _not_utf8(error: UnicodeDecodeError, lines_before: int, source: str, what: str) -> UsageError:
    """The refusal of a byte that is not UTF-8, at its line (`lines_before`: newlines in the input before `error`'s)."""
    line = lines_before + error.object[: error.start].count(b"\n") + 1
    return UsageError(
        f"{source}:{line}: the {what} is not UTF-8 text (byte 0x{error.object[error.start]:02x}).", _UTF8_HINT
    )


def read_text_stream(
    stream: BinaryIO, source: str, what: str, check_first_line: Callable[[str], None] | None = None
) -> str:
    """The UTF-8 text of a binary stream, read in chunks of CHUNK_BYTES and checked as each arrives.

    A byte that is not UTF-8, or a NUL byte (a binary file), is refused at its line as soon as it is read; a
    compressed file at its first chunk; an input over MAX_TEXT_BYTES at the chunk that passes it. Ctrl-C and SIGTERM
    act between chunks. `check_first_line` (a CSV header's check) is called with the first line once it is complete,
    so an endless input of the wrong shape (`yes |`) fails at line 1 rather than at the size limit.
    """
    parts: list[str] = []
    for text in _decoded_chunks(stream, source, what):
        parts.append(text)
        if check_first_line is not None and "\n" in text:
            check_first_line("".join(parts).partition("\n")[0])
            check_first_line = None
    return "".join(parts)


def text_lines(stream: BinaryIO, source: str, what: str) -> Iterator[str]:
    """The UTF-8 lines of a binary stream with their line ends, as `str.splitlines(keepends=True)` gives them.

    Checked as `read_text_stream` checks the whole text, each line handed on as soon as it is complete, so a parser
    reading them keeps only its own result (a trace of millions of rows lived three times over: the text, its list
    of lines, the jobs). An error names `source` and the line of the offending byte and is raised when its chunk
    arrives, after the lines of the chunks before it. A CRLF split across two reads is one line end.
    """
    unfinished: list[str] = []  # the pieces of a line not yet ended (or ended by a CR that a LF may follow)
    for text in _decoded_chunks(stream, source, what):
        yield from _ended_lines(text, unfinished)
    if unfinished:
        yield "".join(unfinished)


def _decoded_chunks(stream: BinaryIO, source: str, what: str) -> Iterator[str]:
    """The stream's UTF-8 text as it arrives, chunk by chunk, each checked (`read_text_stream`); a BOM dropped."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    size = lines_before = 0
    for chunk in _chunks(stream):
        if size == 0:
            _refuse_compressed(chunk, source, what)
            _refuse_wide_unicode(chunk, source, what)
        size += len(chunk)
        nul = chunk.find(b"\0")  # decoded up to it first: a bad byte before it is the one to name
        try:
            text = decoder.decode(chunk if nul < 0 else chunk[:nul])
        except UnicodeDecodeError as error:
            raise _not_utf8(error, lines_before, source, what) from None
        _check_chunk(chunk, nul, size, lines_before, source, what)
        lines_before += chunk.count(b"\n")
        yield text
    try:
        yield decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:  # the input ends inside a character
        raise _not_utf8(error, lines_before, source, what) from None


#: Every character `str.splitlines` ends a line at.
_LINE_ENDS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


def _ended_lines(text: str, unfinished: list[str]) -> list[str]:
    """The lines that `text`, read after the pieces in `unfinished`, ends; its own last line goes to `unfinished`.

    A last line that ends with CR stays there too: the next text may start with the LF of a CRLF. A text without a
    line end only adds to `unfinished`, so a line spread over many chunks is joined once, not once per chunk.
    """
    lines = text.splitlines(keepends=True)
    if not lines:
        return lines
    if len(lines) == 1 and lines[0][-1] not in _LINE_ENDS and not (unfinished and unfinished[-1][-1] == "\r"):
        unfinished.append(text)
        return []
    if unfinished:
        held = "".join(unfinished)
        unfinished.clear()
        if held[-1] != "\r":
            lines[0] = held + lines[0]
        elif lines[0] == "\n":
            lines[0] = held + "\n"
        else:
            lines.insert(0, held)
    last = lines[-1][-1]
    if last not in _LINE_ENDS or last == "\r":
        unfinished.append(lines.pop())
    return lines


def _chunks(stream: BinaryIO) -> Iterator[bytes]:
    """The stream's bytes as they arrive, at most CHUNK_BYTES at a time.

    The first chunk holds at least the 16 bytes a compressed format's magic needs (unless the input is shorter),
    however a pipe splits them.
    """
    read = stream.read1 if hasattr(stream, "read1") else stream.read  # read1: what has arrived, not a whole chunk
    first = b""
    while len(first) < 16 and (more := read(CHUNK_BYTES)):
        first += more
    if first:
        yield first
    while chunk := read(CHUNK_BYTES):
        yield chunk


def _check_chunk(chunk: bytes, nul: int, size: int, lines_before: int, source: str, what: str) -> None:
    """Refuse a chunk holding a NUL byte at `nul` (no text file has one), or one taking the input past MAX_TEXT_BYTES."""
    if nul >= 0:
        line = lines_before + chunk.count(b"\n", 0, nul) + 1
        raise UsageError(
            f"{source}:{line}: the {what} holds a NUL byte, so it is not a text file.",
            f"check that this is the {what} you meant; it must be UTF-8 text.",
        )
    if size > MAX_TEXT_BYTES:
        raise UsageError(
            f"{source}: the {what} is larger than {_size(MAX_TEXT_BYTES)}, far more than any real one, so reading"
            " stopped there.",
            f"check that this is the {what} you meant (not a device or an endless pipe); split a larger one.",
        )


def _refuse_compressed(data: bytes, source: str, what: str) -> None:
    """A usage error when `data` starts with a compressed format's magic bytes: its decoding would fail on byte 2."""
    import re

    found = next(((name, tool) for magic, name, tool in COMPRESSED_MAGIC if re.match(magic, data[:10])), None)
    if found is None:
        return
    name, tool = found
    raise UsageError(
        f"{source}: the {what} looks {name}-compressed, not UTF-8 text.", _decompress_hint(source, what, tool)
    )


def _decompress_hint(source: str, what: str, tool: str) -> str:
    """How to give the compressed `source` decompressed: piped into the command being run, or as a file.

    Input that came from stdin (`--trace -`) is decompressed in the pipe, before factoryctl: its file is not known
    here, so none is named.
    """
    import shlex

    option, command = STDIN_OPTIONS.get(what, ("", ""))
    reader = _command_running() or (f"factoryctl {command}" if command else "factoryctl")
    reads = f"{reader} {option} - ..." if option else f"{reader} ..."
    if source == "stdin":
        return (
            f"decompress it in the pipe, before factoryctl reads it: `... | {_PIPE_TOOLS.get(tool, tool)} | {reads}`."
        )
    if option:
        return f"decompress it and pipe it in with {option} -, e.g. `{tool} {shlex.quote(source)} | {reads}`."
    plain, dot, suffix = source.rpartition(".")
    if dot and plain and suffix.lower() in ("gz", "zst", "xz", "bz2", "zip"):
        return f"decompress it first (`{tool} {shlex.quote(source)} > {shlex.quote(plain)}`) and give that file."
    return f"decompress it first ({tool}) and give that file."


def _command_running() -> str | None:
    """The command being run (`factoryctl sched explain`), from Click's context; None outside a CLI command.

    Click is only looked up among the modules already loaded, never imported: the CLI has loaded it (Typer's copy,
    `typer._click`, or Click itself) when a command runs, and a caller outside the CLI pays nothing for it.
    """
    import sys

    for name in ("typer._click.globals", "click.globals"):
        module = sys.modules.get(name)
        context = module.get_current_context(silent=True) if module is not None else None
        if context is not None:
            return str(context.command_path)
    return None


#: The byte-order marks of the Unicode encodings Windows saves as "Unicode text", and iconv's name for each (which
#: reads the mark). UTF-32's come first: UTF-32-LE's mark starts with UTF-16-LE's.
WIDE_UNICODE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32", "utf-32"),
    (b"\x00\x00\xfe\xff", "UTF-32", "utf-32"),
    (b"\xff\xfe", "UTF-16", "utf-16"),
    (b"\xfe\xff", "UTF-16", "utf-16"),
)


def _refuse_wide_unicode(data: bytes, source: str, what: str) -> None:
    """A usage error naming the encoding when `data` starts with a UTF-16 or UTF-32 byte-order mark.

    Its first byte is not UTF-8, and converting it as Latin-1 (the usual hint) would keep its NUL bytes: the
    hint is the iconv command that reads the mark.
    """
    import shlex

    found = next(((mark, name, code) for mark, name, code in WIDE_UNICODE_BOMS if data.startswith(mark)), None)
    if found is None:
        return
    mark, name, code = found
    converted = "OUT"
    if source != "stdin":
        stem, dot, suffix = Path(source).name.rpartition(".")
        converted = shlex.quote(f"{stem}-utf8.{suffix}" if dot and stem else f"{Path(source).name}-utf8")
    shown = "FILE" if source == "stdin" else shlex.quote(source)
    raise UsageError(
        f"{source}: the {what} is {name} text (it starts with the byte-order mark {mark.hex(' ').upper()}), not UTF-8.",
        f"convert it to UTF-8 (`iconv -f {code} -t utf-8 {shown} > {converted}`) and give that file.",
    )


def exact_number(value: float) -> str:
    """A number read from a user's file or option, as a message echoes it: never rounded (`1000001`, not `1e+06`).

    A whole number prints without a fraction while every digit is exact; anything else prints as Python's shortest
    repr that reads back to the same float (`0.1`, `2.0000001`, `1e+20`), so a range error cannot contradict itself
    (`1e+06 is more than 1,000,000`).
    """
    number = float(value)
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def csv_row_is_empty(row: Mapping[str | None, object]) -> bool:
    """Whether a `csv.DictReader` row has no text in any field: spaces, or commas only (`,,,`).

    That is how a spreadsheet writes a row the user cleared. Fields a short row lacks (None) and extra ones (a list
    under None) count as empty too.
    """
    for value in row.values():
        fields = value if isinstance(value, list) else [value]
        if any(field is not None and str(field).strip() for field in fields):
            return False
    return True


def _size(count: int) -> str:
    """A byte count for a message: `1 GiB`, or `4 MiB` below a GiB."""
    return f"{count / (1 << 30):g} GiB" if count >= 1 << 30 else f"{count / (1 << 20):g} MiB"


def read_utf8(path: Path, what: str, hint: str, check_first_line: Callable[[str], None] | None = None) -> str:
    """The UTF-8 text of `path`, read as `read_text_stream` reads; an unreadable file is a usage error with `hint`."""
    try:
        with path.open("rb") as stream:
            return read_text_stream(stream, str(path), what, check_first_line)
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}.", hint) from exc


#: Where a key sits in a YAML document: mapping keys and sequence indexes from the root (`("nodes", 0, "host")`).
KeyPath = tuple[str | int, ...]


def yaml_children(node: Node) -> Iterator[tuple[Node, KeyPath, Node | None, Node]]:
    """Every child of a composed YAML document (`yaml.compose`) in document order: `(container, path, key, value)`.

    `key` is the key node of a mapping entry, None for a sequence item. Each node is walked once: an alias is the
    node it names, so a recursive alias (`x: &a [*a]`) or a 600-byte alias bomb cannot recurse forever. Both walks
    of a document (key positions in config.py, repeated keys here) go through this one.
    """
    import yaml

    walked: set[int] = set()

    def walk(node: Node, loc: KeyPath) -> Iterator[tuple[Node, KeyPath, Node | None, Node]]:
        if id(node) in walked:
            return
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                sub = (*loc, str(key_node.value))
                yield node, sub, key_node, value_node
                yield from walk(value_node, sub)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                yield node, (*loc, index), None, item
                yield from walk(item, (*loc, index))

    return walk(node, ())


def first_repeated_key(node: Node) -> tuple[KeyPath, Mark] | None:
    """The first key given twice in one mapping of a composed YAML document (`yaml.compose`), in document order.

    Returns the repeated key's path (ending with the key) and its `start_mark` (0-based line and column), or None.
    Merge keys (`<<`) may repeat; `1` and `"1"` are different keys.
    """
    import yaml

    seen: dict[int, set[tuple[str, str]]] = {}
    for container, path, key_node, _ in yaml_children(node):
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
            continue
        keys = seen.setdefault(id(container), set())
        if (key_node.tag, key_node.value) in keys:
            return path, key_node.start_mark
        keys.add((key_node.tag, key_node.value))
    return None
