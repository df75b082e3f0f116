"""Job ids: short, typeable, in submit order, and unique even when the store is re-created.

Nodes keep their ranks' records (`<jobs dir>/<job>/rank-<r>/`) after the store that named them is gone, so an id must
never be handed out twice, not even by a fresh store (DESIGN.md "Job ids"): a counter in the store would restart at 1.
The id is therefore the submit time, in milliseconds since 2020-01-01 UTC as 8 base-32 digits, then 2 random digits
so two submits in one millisecond (two users, two machines) differ, or, where they do not (one chance in 1,024), the
store refuses the second (`add_job`) and its caller makes another. Within one process ids only grow: one made in
the same millisecond as the last (a script submitting in a loop) or after the clock stepped back is the last one
plus one, so a burst never repeats an id and keeps the order it was made in. Fixed width, and digits that sort as their
values, so sorting ids as strings sorts them by submit time. The alphabet leaves out 0/o and 1/l, which people
misread when they type an id from a screen.
8 digits of milliseconds last until November 2054; a time outside 2020..2054 is clamped to the range's ends (ids
stay valid and unique by their random tail, but no longer sort by time).
"""

from __future__ import annotations

import random
import threading

#: The id's digits, in the order of their values (so string order is numeric order).
ALPHABET = "23456789abcdefghijkmnpqrstuvwxyz"
#: Digits of the submit time and of the random tail.
TIME_DIGITS = 8
RANDOM_DIGITS = 2
#: Unix time of the id's millisecond 0: 2020-01-01T00:00:00Z.
EPOCH_S = 1_577_836_800
_BASE = len(ALPHABET)
_LAST_MS = _BASE**TIME_DIGITS - 1

_WIDTH = TIME_DIGITS + RANDOM_DIGITS

_system_random = random.SystemRandom()
_made = threading.Lock()
_last_made = [""]  # the last id this process made with the OS's randomness


def new_job_id(now: float, rand: random.Random | None = None) -> str:
    """A new id for a job submitted at unix time `now`.

    `rand` is the random tail's source: given (tests, replays), the id depends only on it and `now`; by default it is
    the OS's, and the id is also greater than the last one this process made (module docstring).
    """
    ms = min(max(int((now - EPOCH_S) * 1000), 0), _LAST_MS)
    source = _system_random if rand is None else rand
    tail = "".join(source.choice(ALPHABET) for _ in range(RANDOM_DIGITS))
    fresh = _digits(ms, TIME_DIGITS) + tail
    if rand is not None:
        return fresh
    with _made:
        last = _last_made[0]
        if fresh <= last and last != ALPHABET[-1] * _WIDTH:
            fresh = _digits(_value(last) + 1, _WIDTH)
        _last_made[0] = fresh
    return fresh


def id_time(job_id: str) -> float:
    """The unix time (to the millisecond) an id made by `new_job_id` was made for; a ValueError for any other text."""
    if len(job_id) != _WIDTH or not is_job_id_text(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return EPOCH_S + _value(job_id[:TIME_DIGITS]) / 1000


def is_job_id_text(text: str) -> bool:
    """Whether `text` uses only the id's alphabet (a whole id or a prefix a person typed)."""
    return bool(text) and all(c in ALPHABET for c in text)


def _digits(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, digit = divmod(value, _BASE)
        out.append(ALPHABET[digit])
    return "".join(reversed(out))


def _value(digits: str) -> int:
    value = 0
    for digit in digits:
        value = value * _BASE + ALPHABET.index(digit)
    return value
