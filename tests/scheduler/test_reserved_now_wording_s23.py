"""A reservation that starts at this very pass reads "reserved start now", never "reserved start in now".

A running job past its walltime (preemption off) is expected to end at once, so the job waiting for its node holds a
reservation at the pass's own time; the reason said `reserved start in now on n0`.
"""

from __future__ import annotations

from helpers import nodes, pending, running

from factoryctl.scheduler.decide import schedule
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.reasons import from_now


def test_a_job_waiting_for_an_overdue_job_is_reserved_to_start_now() -> None:
    jobs = [running("over", [("n0", 8)], 0, 400), pending("next", 8, 1)]
    reason = schedule(nodes(1), jobs, 100_000, POLICIES["easy"]).waits[0].reason
    assert reason == "waiting for 1 node with 8 free GPUs (0 now); reserved start now on n0"


def test_a_time_already_come_is_now_and_a_later_one_is_in_a_while() -> None:
    assert (from_now(0), from_now(-5), from_now(30), from_now(2400)) == ("now", "now", "in 30 s", "in ~40 min")
