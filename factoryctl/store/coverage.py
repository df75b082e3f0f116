"""The time a minute's power samples stand for, measured from their timestamps: what energy bills a rollup for.

A rollup keeps a minute's mean power, and energy before the raw window is that mean times the time its samples
covered. A sample count does not tell that time: the interval changes (a config reload), and a minute the controller
started in at :31 holds as many 1 s samples as a whole minute of 2 s ones. The samples' own times do, exactly, at
any interval and across a change, and cost nothing to keep: the rollup (`samples._roll_minutes`) reads them anyway.
Kept apart from the SQL, as a function of a list of times, so the rule can be read and tested on its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

MINUTE_MS = 60_000


def held_for(gap: int, usual: int) -> int:
    """The gap rule every energy source follows: how long a reading counts when the next comes `gap` ms later.

    The whole gap, unless it is a silence (more than twice the usual spacing: a node switched off, unreachable,
    or the controller stopped): then the usual spacing only, so the GPU is not billed at its last power for hours
    it may have been off. A counter step across a silence is not spread over it either (`energy._prorated`).
    """
    return gap if gap <= 2 * usual else usual


def held_ms(gap: int, before: int | None, after: int | None) -> int:
    """How long a power sample counts when the next one comes `gap` ms later (`before`, `after`: the gaps next to it).

    `held_for` with the larger gap next to it as the usual spacing: comparing with the gaps next to it, not a fixed
    interval, keeps a change of interval (1 s to 5 s) from reading as a silence.
    """
    usual = max(before or 0, after or 0)
    return held_for(gap, usual) if usual > 0 else gap


def covered_by_minute(times: Sequence[int], first_minute: int, last_minute: int) -> dict[int, int]:
    """The time (ms) each minute in [first_minute, last_minute) that has samples stands for.

    `times`: one GPU's power samples (ms, ascending), with up to two more either side of those minutes (for the gaps
    next to theirs). A sample counts from its time until the next by `held_ms`; the newest (none after it yet) for
    the interval the one before it had, or a minute when it is alone. A sample's time up to the start of the next
    sample's minute is its own minute's, and what reaches past that is the next sample's minute's (the lead-in from
    that minute's start). So a minute's total is the time from its start to the next minute with samples that they
    cover: 29 s for a controller started at :31 (at any interval), 300 s for a cron sweep's minute (a sample every 5
    minutes, which the minutes between have none of), 31 s for 1 s samples with none from :20 to :50 (a silence).
    """
    gaps = [after - before for before, after in itertools.pairwise(times)]
    covered: dict[int, int] = {}
    newest = len(times) - 1
    for index, t in enumerate(times):
        minute = next_minute = t // MINUTE_MS
        before = gaps[index - 1] if index else None
        if index == newest:  # the interval in force, as the sample before it had it
            own, past = held_ms(before, gaps[index - 2] if index >= 2 else None, None) if before else MINUTE_MS, 0
        else:
            end = t + held_ms(gaps[index], before, gaps[index + 1] if index + 1 < newest else None)
            next_minute = times[index + 1] // MINUTE_MS
            boundary = next_minute * MINUTE_MS if next_minute > minute else end
            own, past = min(end, boundary) - t, max(0, end - boundary)
        if first_minute <= minute < last_minute:
            covered[minute] = covered.get(minute, 0) + own
        if past and first_minute <= next_minute < last_minute:
            covered[next_minute] = covered.get(next_minute, 0) + past
    return covered
