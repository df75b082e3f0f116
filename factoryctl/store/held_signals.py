"""Hold Ctrl-C, SIGTERM and SIGHUP while a record that must follow an action is written (the audit entry of a power change).

The limits have changed on the nodes by the time their audit entry is written, so an interrupt must not cut the
write short. While the block runs the signals are only noted; once it ends the first one is sent again, to the
handlers that were in place, so it takes effect as if it had come just then. Handlers are swapped rather than the
signal mask, which would hold them off the main thread only while Python runs its handlers there whichever thread
received them. `signals_routed`, the swap itself, also serves `exec` waiting for interrupted commands
(cli/signals.py: a signal there only ends the wait).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

#: The signals routed: Ctrl-C, SIGTERM, and SIGHUP where there is one (POSIX).
_ROUTED = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def signals_routed(on_signal: Callable[[int], None]) -> Iterator[None]:
    """While the block runs, SIGINT, SIGTERM and SIGHUP only call `on_signal(signum)`; the old handlers come back after.

    A signal ignored where the block runs stays ignored (SIGINT under `cmd &`). Outside the main thread no handler
    can be installed, and the block runs as it is.
    """
    previous: dict[signal.Signals, Any] = {}
    with contextlib.suppress(ValueError):
        for sig in _ROUTED:
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                previous[sig] = signal.signal(sig, lambda signum, frame: on_signal(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP during the block take effect at its end (one of them, the first, sent again)."""
    received: list[int] = []
    try:
        with signals_routed(received.append):
            yield
    finally:
        if received:
            signal.raise_signal(received[0])
