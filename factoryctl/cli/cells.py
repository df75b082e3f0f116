"""How many terminal columns a table cell takes, so a table's columns line up whatever their cells hold.

`str.ljust` counts characters: a drain reason `ファン故障 🔥 café` (18 columns in 12 characters) pushed every later
column of its row 6 columns right. East Asian Width W and F take two columns; combining and enclosing marks and
format characters (a zero-width joiner, a variation selector) none, the soft hyphen aside; VS16 makes the narrow
symbol before it an emoji of two (☀️), as rich counts it. The stdlib's tables: importing rich's `cell_len` would cost
every listing's start-up the import, and the tables need nothing more.
"""

from __future__ import annotations

import functools


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
