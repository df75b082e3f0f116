r"""Quoting for the node's login shell, which may be fish as well as sh, bash or zsh.

OpenSSH hands a command to the login user's shell as one string (`$SHELL -c STRING`), so every argument we send is
quoted for that shell. `shlex.quote` quotes for POSIX shells only: fish reads `\\` and `\'` as escapes inside single
quotes, so on a fish node an argument holding a backslash arrived changed, and a crafted one (`\'$(cmd)\'`) ran a
command; zsh expands an unquoted word starting with `=` (`=ls` is `/bin/ls`), which `shlex` leaves bare. Here a
single-quoted run never holds a backslash or a quote: those two go in double quotes (`"\\"`, `"'"`), which all four
shells read the same way, and only words of plain characters go unquoted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Words every shell reads literally when bare (shlex's set without `=` and `%`: zsh's `=cmd`, fish 2's `%pid`).
_BARE = re.compile(r"[A-Za-z0-9_@+:,./-]+\Z")
_QUOTE_OR_BACKSLASH = re.compile(r"(['\\])")
#: `NAME=value`: a shell variable assignment when it comes before the command.
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*=)(.*)\Z", re.DOTALL)


def shell_quote(word: str) -> str:
    """`word` as one argument for sh, bash, zsh and fish alike (`it's` -> `'it'"'"'s'`).

    A leading `NAME=` stays bare, so that `LC_ALL=C cmd` is still an assignment for the command (`ssh host VAR=x
    cmd`, pdsh habits); only its value is quoted (`A='~/x'`: no tilde expansion either).
    """
    if _BARE.match(word):
        return word
    assignment = _ASSIGNMENT.match(word)
    if assignment is not None:
        return assignment[1] + (_quoted(assignment[2]) if assignment[2] else "''")
    return _quoted(word) if word else "''"


def _quoted(word: str) -> str:
    if _BARE.match(word):
        return word
    pieces = []
    for piece in _QUOTE_OR_BACKSLASH.split(word):
        if piece == "'":
            pieces.append('"\'"')
        elif piece == "\\":
            pieces.append('"\\\\"')
        elif piece:
            pieces.append(f"'{piece}'")
    return "".join(pieces)


def shell_join(argv: Iterable[str]) -> str:
    """Argv as one command line for the node's login shell (each word through `shell_quote`)."""
    return " ".join(shell_quote(word) for word in argv)
