"""Reading a user's text file (prices, curves, policies, traces): UTF-8, or a usage error naming file, line and byte.

A file saved as Latin-1 or carrying a stray byte is bad input, not a bug in factoryctl, so it must end as one
sentence with exit 2 (as `sched simulate --trace` says it) rather than on the internal-error path. Every loader
decodes through here so the sentence is the same whatever the file is.
"""

from __future__ import annotations

from pathlib import Path

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
