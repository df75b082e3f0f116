"""ISO-8601 times read the same on every Python factoryctl supports (3.10 on).

Python 3.11's `datetime.fromisoformat` reads most of ISO-8601; 3.10's reads only what `isoformat()` writes. So on
3.10 a price CSV time written `+0000` (what strftime's `%z` writes), `+00`, in the basic form (`20230101T000000Z`),
with a comma or a fraction not of 3 or 6 digits, and `--since 20261122`, were refused, though the docs accept
them (Ubuntu 22.04's Python is 3.10, and many GPU hosts run it). `fromisoformat` here is the one reader every
caller uses: on 3.11+ Python's own, on 3.10 the same text first rewritten into the form 3.10 reads. The rewrite
only restates what 3.11 reads (same numbers, so a month 13 is still refused in Python's words); text it does not
recognise is refused, as 3.11 refuses it (3.10's own reader takes some text 3.11 refuses: `T01Z+01:00`). A few odd
forms 3.11 also reads stay refused on 3.10: week dates, a fraction of an hour or of a minute, `01:00:00.Z`, a space
before the offset, a digit or a non-ASCII character between date and time. Stdlib only: any layer may use it.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime

_NATIVE = sys.version_info >= (3, 11)

# HH[:MM[:SS[.f]]] or HHMMSS.f (the parts written the same way; a fraction, with a point or a comma, of any length)
_CLOCK = (
    r"(?P<{p}h>[0-9]{{2}})"
    r"(?:(?P<{p}c>:?)(?P<{p}m>[0-9]{{2}})(?:(?P={p}c)(?P<{p}s>[0-9]{{2}})(?:[.,](?P<{p}f>[0-9]+))?)?)?"
)
# What 3.11 reads, in the common forms: a date (extended or basic), then any one character and a time (extended or
# basic, each part written the same way) and an offset (Z, or ±HH[:MM[:SS[.f]]] in either way).
_ISO = re.compile(
    r"(?P<y>[0-9]{4})(?P<dc>-?)(?P<mo>[0-9]{2})(?P=dc)(?P<d>[0-9]{2})"
    rf"(?:(?P<sep>[\x00-\x2f\x3a-\x7f]){_CLOCK.format(p='')}(?P<tz>Z|(?P<sign>[+-]){_CLOCK.format(p='z')})?)?"
)


def fromisoformat(text: str) -> datetime:
    """`datetime.fromisoformat(text)` as Python 3.11 reads it, on every Python; a ValueError when it is no time."""
    if _NATIVE:
        return datetime.fromisoformat(text)
    written = as_py310(text)
    try:
        if written is None:  # not left to 3.10, which reads some text 3.11 refuses (`01Z+01:00`)
            raise ValueError("Invalid isoformat string")
        return datetime.fromisoformat(written)
    except ValueError as exc:  # Python's message quotes the text: the one given, not the rewrite
        if str(exc).startswith("Invalid isoformat string"):
            raise ValueError(f"Invalid isoformat string: {text!r}") from None
        raise


def as_py310(text: str) -> str | None:
    """`text` in the form Python 3.10's `fromisoformat` reads, when it is a form 3.11 reads; else None.

    `20261122T0100Z` is `2026-11-22T01:00:00+00:00`; a fraction is cut or padded to 6 digits, as 3.11 does.
    """
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    date = f"{match['y']}-{match['mo']}-{match['d']}"
    if match["sep"] is None:
        return date
    written = f"{date}{match['sep']}{_clock(match, '')}"
    if match["tz"] == "Z":
        return f"{written}+00:00"
    return f"{written}{match['sign']}{_clock(match, 'z')}" if match["tz"] else written


def _clock(match: re.Match[str], prefix: str) -> str:
    """`HH:MM[:SS[.ffffff]]` from the groups of one clock (a time, or an offset with `prefix` z)."""
    hours, minutes, seconds, fraction = (match[prefix + part] for part in "hmsf")
    written = f"{hours}:{minutes or '00'}"
    if seconds is None and not prefix:
        return f"{written}:00"
    if seconds is not None:
        written = f"{written}:{seconds}"
    return f"{written}.{fraction[:6].ljust(6, '0')}" if fraction else written
