"""Reading a user's text file (prices, curves, policies, traces): UTF-8, or a usage error naming file, line and byte.

A file saved as Latin-1 or carrying a stray byte is bad input, not a bug in factoryctl, so it must end as one
sentence with exit 2 (as `sched simulate --trace` says it) rather than on the internal-error path. Every loader
decodes through here so the sentence is the same whatever the file is.

The YAML files among them (factory.yaml, power policies) share one more check, `first_repeated_key`: YAML lets a
repeated key silently replace the first, which hides a mistake. The walk is here once; each caller words the refusal
(a ConfigError for factory.yaml, a usage error for a policy file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factoryctl.errors import UsageError


def decode_utf8(data: bytes, source: str, what: str) -> str:
    """The text of a file's bytes: UTF-8, with or without a byte-order mark; anything else is a usage error.

    `source` names the file in the message (`prices.csv:3: ...`), `what` says what it is ("prices file").
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UsageError(
            f"{source}:{line}: the {what} is not UTF-8 text (byte 0x{data[error.start]:02x}).",
            "save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 FILE), or remove the offending bytes.",
        ) from None


def read_utf8(path: Path, what: str, hint: str) -> str:
    """The UTF-8 text of `path`; an unreadable file is a usage error with `hint` (what to check), as is bad UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}.", hint) from exc
    return decode_utf8(data, str(path), what)


#: Where a key sits in a YAML document: mapping keys and sequence indexes from the root (`("nodes", 0, "host")`).
KeyPath = tuple[str | int, ...]


def first_repeated_key(node: Any, loc: KeyPath = (), _walked: set[int] | None = None) -> tuple[KeyPath, Any] | None:
    """The first key given twice in one mapping of a composed YAML document (`yaml.compose`), in document order.

    Returns the repeated key's path (ending with the key) and its `start_mark` (0-based line and column), or None.
    Merge keys (`<<`) may repeat; `1` and `"1"` are different keys. Each node is walked once: an alias is the
    node it names, so a recursive alias (`x: &a [*a]`) or a 600-byte alias bomb cannot recurse forever.
    """
    import yaml

    walked = set() if _walked is None else _walked
    if id(node) in walked:
        return None
    walked.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[tuple[str, str]] = set()
        for key_node, value_node in node.value:
            sub = (*loc, str(key_node.value))
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if (key_node.tag, key_node.value) in seen:
                    return sub, key_node.start_mark
                seen.add((key_node.tag, key_node.value))
            found = first_repeated_key(value_node, sub, walked)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = first_repeated_key(item, (*loc, index), walked)
            if found is not None:
                return found
    return None
