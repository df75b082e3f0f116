"""Job ids (model/job_ids.py): in submit order as strings, typeable, and distinct within one millisecond."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factoryctl.model import job_ids
from factoryctl.model.job_ids import ALPHABET, id_time, is_job_id_text, new_job_id

T = TypeVar("T")
NOW = 1_764_000_000.0  # 2025-11-24
#: 2020 .. 2054: the range the ids' 8 time digits cover.
in_range = st.floats(min_value=1_577_836_800, max_value=2_677_000_000, allow_nan=False)


@given(in_range, in_range)
def test_ids_sort_in_submit_order_to_the_millisecond(a: float, b: float) -> None:
    first, second = new_job_id(a, random.Random(0)), new_job_id(b, random.Random(0))
    if int(a * 1000) < int(b * 1000) - 1:  # a float's millisecond may round either way by one
        assert first < second
    assert abs(id_time(first) - a) < 0.002


def test_ids_are_short_and_use_only_unambiguous_lowercase_letters_and_digits() -> None:
    assert set(ALPHABET) == set("abcdefghijklmnopqrstuvwxyz23456789") - set("ol")
    assert list(ALPHABET) == sorted(ALPHABET)  # so string order is numeric order
    for now in (NOW, 0.0, 1e12):
        job_id = new_job_id(now, random.Random(now))
        assert len(job_id) <= 10
        assert is_job_id_text(job_id)
        assert not set(job_id) & set("0o1lABC")


def test_a_burst_in_one_millisecond_gets_different_ids_in_the_order_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_ids, "_last_made", [""])  # as in a new process: no id made yet
    burst = [new_job_id(NOW) for _ in range(2000)]  # far more than the 1,024 random tails
    assert burst == sorted(set(burst))
    assert all(abs(id_time(job_id) - NOW) < 0.1 for job_id in burst)  # still about when they were made
    assert new_job_id(NOW - 60) > burst[-1]  # the clock stepped back: still after the last one


class SameTail(random.Random):
    """A random source that draws the same digit every time: two ids of one millisecond would be equal."""

    def choice(self, seq: Sequence[T]) -> T:  # type: ignore[override]
        return seq[0]


def test_an_id_equal_to_the_last_one_made_is_made_greater(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(job_ids, "_last_made", [""])
    monkeypatch.setattr(job_ids, "_system_random", SameTail())
    first, second = new_job_id(NOW), new_job_id(NOW)
    assert first < second


def test_with_a_given_random_source_the_id_depends_only_on_it_and_the_time() -> None:
    assert new_job_id(NOW, random.Random(3)) == new_job_id(NOW, random.Random(3))
    tails = {new_job_id(NOW, random.Random(seed))[8:] for seed in range(40)}
    assert len(tails) > 30
    assert {job_id[:8] for job_id in (new_job_id(NOW, random.Random(seed)) for seed in range(5))} == {
        new_job_id(NOW, random.Random(0))[:8]
    }


def test_a_recreated_store_cannot_give_an_id_again() -> None:
    """No counter: an id made later is later, whatever was stored (DESIGN.md: nodes keep their ranks' records)."""
    earlier = new_job_id(NOW, random.Random(1))
    assert all(new_job_id(NOW + 0.002, random.Random(seed)) > earlier for seed in range(50))


def test_times_outside_the_range_are_clamped_to_valid_ids() -> None:
    assert new_job_id(0.0, random.Random(1)).startswith("22222222")
    assert new_job_id(1e12, random.Random(1)).startswith("zzzzzzzz")
