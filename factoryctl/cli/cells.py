"""How many terminal columns a table cell takes, so a table's columns line up whatever their cells hold.

`str.ljust` counts characters: a drain reason `ファン故障 🔥 café` (18 columns in 12 characters) pushed every later
column of its row 6 columns right. East Asian Width W and F take two columns; combining and enclosing marks and
format characters (a zero-width joiner, a variation selector) none, the soft hyphen aside; VS16 makes the narrow
symbol before it an emoji of two (☀️), as rich counts it. The stdlib's tables: importing rich's `cell_len` would cost
every listing's start-up the import, and the tables need nothing more.

A cell is measured as stdout writes it (`as_written`): under an ASCII or Latin-1 stdout `数据中心` is written `????`,
4 columns, not the 8 it takes on a UTF-8 terminal.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import TextIO


def cell_width(text: str) -> int:
    """The terminal columns `text` takes: ASCII, nearly every cell, is counted at once."""
    if text.isascii():
        return len(text)
    emoji = [at for at in range(1, len(text)) if text[at] == "\ufe0f" and _char_width(text[at - 1]) == -1]
    return sum(abs(_char_width(char)) for char in text) + len(emoji)


@functools.lru_cache(maxsize=4096)
def _char_width(char: str) -> int:
    """`cell_width` of one character; -1 for a narrow symbol that VS16 after it makes an emoji of two columns."""
    import unicodedata

    category = unicodedata.category(char)
    if char != "\u00ad" and category in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return -1 if category == "So" else 1


def as_written(stream: TextIO | None = None) -> Callable[[str], str]:
    """What a cell becomes once `stream` (stdout) writes it: itself, or with `?` for each character it cannot write.

    As `main()`'s stdout does (cli/arguments.py's OUTPUT_ERRORS): an undecodable byte of argv (a lone surrogate) is written
    as that byte, so it stays; any other character the encoding lacks is one `?`. A table measures what is written:
    measured before, a wide character was padded as 2 columns and written as 1.
    """
    import codecs

    encoding = getattr(stream if stream is not None else sys.stdout, "encoding", None) or "utf-8"
    try:
        if codecs.lookup(encoding).name == "utf-8":
            return _itself
    except LookupError:  # never for a stream Python opened
        return _itself
    return functools.partial(_written_in, encoding)


def _itself(text: str) -> str:
    return text


def _written_in(encoding: str, text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode(encoding)
    except (UnicodeError, LookupError):
        return "".join(char if _writes(encoding, char) else "?" for char in text)
    return text


@functools.lru_cache(maxsize=4096)
def _writes(encoding: str, char: str) -> bool:
    """Whether `encoding` writes `char`; an undecodable byte (U+DC80-U+DCFF) is written as itself (`as_written`)."""
    if 0xDC80 <= ord(char) <= 0xDCFF:
        return True
    try:
        char.encode(encoding)
    except (UnicodeError, LookupError):
        return False
    return True
