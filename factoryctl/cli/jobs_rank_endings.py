"""How each rank of a job ended, as `jobs show` says it: an exit status, or the signal that killed it.

A rank's wrapper writes 128+N for a rank killed by signal N (`agent/rank_run.py`), as a shell reports it: `exit 143`
read as a number says less than `killed by SIGTERM (exit 143)`.
"""

from __future__ import annotations

import signal

#: The highest signal number an exit status 128+N is read as (Linux's realtime signals end at 64).
MAX_SIGNAL = 64


def ending_text(exit_code: int) -> str:
    """`exit 3`, or `killed by SIGKILL (exit 137)` for a status a shell gives a signal (128+N), or a negative one."""
    number = -exit_code if exit_code < 0 else exit_code - 128
    if not 0 < number <= MAX_SIGNAL:
        return f"exit {exit_code}"
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return f"killed by {name}" + (f" (exit {exit_code})" if exit_code > 0 else "")
