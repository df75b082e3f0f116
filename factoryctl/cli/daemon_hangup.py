"""A daemon's SIGHUP is a reload from the first instant of the process, held until the daemon can reload.

docs/controller.md's unit reloads with `ExecReload=/bin/kill -HUP $MAINPID`: `systemctl reload` right after `start`
must not kill `controller run` or `metrics serve` (SIGHUP's default action, exit 129). The console script
(`entry.py`) installs `hold_hangup` before it imports the CLI (a tenth of a second or more), the CLI's own handler
holds it the same way (`signals.sigterm_interrupts`), and the daemon takes it once its reload handler is in place.

Standard library only: this runs before typer is loaded. The held flag is a list, not a `threading.Event`: a
handler runs between two bytecodes of the main thread, and an Event's `set` from it blocks for ever if the main
thread was inside that Event's lock (the controller's deadlock of session 18).
"""

from __future__ import annotations

import signal
from types import FrameType

#: The commands run as a service's daemon (docs/controller.md's unit): SIGHUP reloads them, from the CLI's start on.
DAEMON_COMMANDS = (("controller", "run"), ("metrics", "serve"))

#: Non-empty when a daemon's SIGHUP came before its reload handler was in place; one entry however many came.
_HELD: list[int] = []


def runs_as_daemon(args: list[str]) -> bool:
    """Whether `args` run one of `DAEMON_COMMANDS`: their first two words, the value of `-c`/`--config` skipped.

    Told before the command line is parsed (that takes a while: a SIGHUP from `systemctl reload` meanwhile killed
    the daemon with exit 129), and cheaply: the command tree (`app._resolve`) costs 70 ms to build.
    """
    words: list[str] = []
    value_next = False
    for word in args:
        if word == "--" or len(words) == 2:
            break
        if value_next:
            value_next = False
        elif word == "--config" or _short_config_last(word):
            value_next = True  # `-c FILE`, `-qc FILE` (not `-cFILE`, `-qcFILE`: the value is in the word)
        elif not word.startswith("-"):
            words.append(word)
    return tuple(words) in DAEMON_COMMANDS


def _short_config_last(word: str) -> bool:
    """Whether `word` is a cluster of short options whose `-c` comes last, so the next word is its value."""
    if not word.startswith("-") or word.startswith("--"):
        return False
    _flags, c, value = word[1:].partition("c")
    return bool(c) and not value


def hold_hangup(signum: int, frame: FrameType | None) -> None:
    """The SIGHUP handler while a daemon starts: remember it for the reload (no lock taken: see the module doc)."""
    if not _HELD:
        _HELD.append(signum)


def hold_hangups_from_now(args: list[str]) -> None:
    """The console script's first act: a daemon's SIGHUP is held, not fatal (unless it was ignored, e.g. nohup)."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is not None and runs_as_daemon(args) and signal.getsignal(hangup) is signal.SIG_DFL:
        signal.signal(hangup, hold_hangup)


def take_held_hangup() -> bool:
    """Whether a SIGHUP came while the daemon started, held for it to reload once its handler is in place; clears it.

    Called by the daemon right after it installed its own SIGHUP handler, which takes any later one. A SIGHUP held
    between the test and the clear is the same reload: it came before the reload runs.
    """
    held = bool(_HELD)
    del _HELD[:]
    return held
