"""Reading a user's text file (prices, curves, policies, traces): UTF-8, or a usage error naming file, line and byte.

A file saved as Latin-1 or carrying a stray byte is bad input, not a bug in factoryctl, so it must end as one
sentence with exit 2 (as `sched simulate --trace` says it) rather than on the internal-error path. Every loader
decodes through here so the sentence is the same whatever the file is. A compressed file (a trace as `.csv.gz`) is
said to be one, with how to pipe it in decompressed, rather than blamed for a stray byte. `exact_number` echoes a
value read from such a file in an error without rounding it, so a range error never contradicts itself.

The YAML files among them (factory.yaml, power policies) share one more check, `first_repeated_key`: YAML lets a
repeated key silently replace the first, which hides a mistake. The walk is here once; each caller words the refusal
(a ConfigError for factory.yaml, a usage error for a policy file).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from factoryctl.errors import UsageError

#: How the compressed formats a trace or a price export usually comes in start, and the tool that decompresses
#: each to stdout. bzip2's `BZh` could begin a text file, so its block size digit and first block's magic count too.
COMPRESSED_MAGIC = (
    (rb"\x1f\x8b", "gzip", "zcat"),
    (rb"\x28\xb5\x2f\xfd", "zstd", "zstdcat"),
    (rb"\xfd7zXZ\x00", "xz", "xzcat"),
    (rb"BZh[1-9](?:1AY&SY|\x17rE8P\x90)", "bzip2", "bzcat"),
)
#: The option that reads each kind of file from stdin (`-`), and a command that takes it, so a compressed file can
#: be piped in decompressed (price show and price history take `--prices -` too, sched explain `--trace -`).
STDIN_OPTIONS = {"trace": ("--trace", "sched simulate"), "prices file": ("--prices", "power simulate")}


def decode_utf8(data: bytes, source: str, what: str) -> str:
    """The text of a file's bytes: UTF-8, with or without a byte-order mark; anything else is a usage error.

    `source` names the file in the message (`prices.csv:3: ...`), `what` says what it is ("prices file"). A
    compressed file (gzip, zstd, xz, bzip2) is said to be one, with how to pipe it in decompressed.
    """
    _refuse_compressed(data, source, what)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(
            f"{source}:{line}: the {what} is not UTF-8 text (byte 0x{data[error.start]:02x}).",
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE), or remove the offending bytes.",
        ) from None


def _refuse_compressed(data: bytes, source: str, what: str) -> None:
    """A usage error when `data` starts with a compressed format's magic bytes: its decoding would fail on byte 2."""
    import re
    import shlex

    found = next(((name, tool) for magic, name, tool in COMPRESSED_MAGIC if re.match(magic, data[:10])), None)
    if found is None:
        return
    name, tool = found
    shown = "FILE" if source == "stdin" else shlex.quote(source)
    if what in STDIN_OPTIONS:
        option, command = STDIN_OPTIONS[what]
        hint = f"decompress it and pipe it in with {option} -, e.g. `{tool} {shown} | factoryctl {command} {option} - ...`."
    else:
        plain, dot, suffix = source.rpartition(".")
        hint = (
            f"decompress it first (`{tool} {shown} > {shlex.quote(plain)}`) and give that file."
            if dot and plain and suffix.lower() in ("gz", "zst", "xz", "bz2")
            else f"decompress it first ({tool}) and give that file."
        )
    raise UsageError(f"{source}: the {what} looks {name}-compressed, not UTF-8 text.", hint)


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


def read_utf8(path: Path, what: str, hint: str) -> str:
    """The UTF-8 text of `path`; an unreadable file is a usage error with `hint` (what to check), as is bad UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}.", hint) from exc
    return decode_utf8(data, str(path), what)


#: Where a key sits in a YAML document: mapping keys and sequence indexes from the root (`("nodes", 0, "host")`).
KeyPath = tuple[str | int, ...]


def yaml_children(node: Any) -> Iterator[tuple[Any, KeyPath, Any | None, Any]]:
    """Every child of a composed YAML document (`yaml.compose`) in document order: `(container, path, key, value)`.

    `key` is the key node of a mapping entry, None for a sequence item. Each node is walked once: an alias is the
    node it names, so a recursive alias (`x: &a [*a]`) or a 600-byte alias bomb cannot recurse forever. Both walks
    of a document (key positions in config.py, repeated keys here) go through this one.
    """
    import yaml

    walked: set[int] = set()

    def walk(node: Any, loc: KeyPath) -> Iterator[tuple[Any, KeyPath, Any | None, Any]]:
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


def first_repeated_key(node: Any) -> tuple[KeyPath, Any] | None:
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
