"""The replay finds its claim's gangs through indexes (`PreemptingReplay.by_end`, `by_value`), not a scan.

A job waiting for gangs that end within the grace period asks for its claim at every pass; the replay used to scan
and sort every running gang each time (benchmarks/README.md, Preemption). The indexes must give exactly the plan
the scan gave, and the victims are read only as far as they make room.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factoryctl.scheduler.core import Candidate, ClaimFor, Reservation
from factoryctl.scheduler.freemap import FreeMap
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.preempt import Holder, claim_reservation, make_room
from factoryctl.scheduler.preempt_replay import PreemptingReplay
from factoryctl.scheduler.simulate import cluster_nodes, drive
from factoryctl.scheduler.trace import TraceJob


class ScanningReplay(PreemptingReplay):
    """Checks every claim against the scan of all running gangs the replay did before its indexes."""

    compared = 0

    def claim_for(self, now: float) -> ClaimFor:
        indexed = super().claim_for(now)

        def both(fm: FreeMap, first: Candidate) -> Reservation | None:
            holders = [
                gang.holder
                for gang in self.gangs.values()
                if gang.claim is None and gang.holder.started_at < now and gang.holder.priority < first.priority
            ]
            scanned = claim_reservation(fm, first, holders, now, self.config.grace_s) if holders else None
            got = indexed(fm, first)
            assert got == scanned
            ScanningReplay.compared += 1
            self.check_indexes()
            return got

        return both

    def check_indexes(self) -> None:
        """The indexes list exactly the gangs neither stopping nor waited for, each once."""
        unclaimed = sorted(seq for seq, gang in self.gangs.items() if gang.claim is None)
        assert sorted(seq for _, _, seq in self.by_end) == unclaimed
        assert sorted(seq for *_, seq in self.by_value) == unclaimed


@st.composite
def priority_trace(draw: st.DrawFn) -> list[TraceJob]:
    jobs = []
    for i in range(draw(st.integers(2, 25))):
        gpus = draw(st.sampled_from([1, 2, 4, 8, 8, 16]))
        duration = float(draw(st.integers(0, 3000)))
        walltime = duration * draw(st.sampled_from([1.0, 1.0, 3.0]))
        submit = float(draw(st.integers(0, 4000)))
        jobs.append(TraceJob(f"j{i}", submit, duration, gpus, None, draw(st.integers(0, 3)), walltime))
    return jobs


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=priority_trace(), count=st.integers(1, 4), grace=st.sampled_from([0.0, 30.0, 300.0, 3000.0]))
def test_the_indexed_claim_is_the_scanned_one(trace: list[TraceJob], count: int, grace: float) -> None:
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=grace)
    replay = ScanningReplay(cluster_nodes(count, 8), config, lambda: 0.0)
    drive(replay, trace)
    assert not replay.queue
    replay.check_indexes()


def test_the_comparison_runs_and_a_gang_ending_at_the_end_of_the_grace_is_waited_for() -> None:
    """low's walltime ends at 130 s, the end of vip's grace period exactly: vip waits for it and stops nobody."""
    before = ScanningReplay.compared
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=30.0)
    trace = [TraceJob("low", 0, 130, 8, None, 0, 130), TraceJob("vip", 100, 50, 8, None, 5, 50)]
    replay = ScanningReplay(cluster_nodes(1, 8), config, lambda: 0.0)
    drive(replay, trace)
    assert ScanningReplay.compared > before
    assert replay.stopped == 0
    assert [(r.job_id, r.start_s) for r in replay.records] == [("low", 0), ("vip", 130)]


def test_victims_are_read_only_when_the_ending_gangs_do_not_make_room() -> None:
    fm = FreeMap(["n0", "n1"], [8, 8], ["", ""])
    fm.take(0, 8)
    fm.take(1, 8)
    job = Candidate("vip", 8, 1, 8, 50.0, 0.0, (0.0, 0.0, 0), priority=5)
    ending = Holder("old", 0, 0.0, ((0, 8),), ends_by=100.0)

    def untouchable() -> Iterator[Holder]:
        raise AssertionError("the victims were read although the ending gang makes room")
        yield

    plan = make_room(fm, job, [ending], untouchable())
    assert (plan.victims, [h.id for h in plan.awaited]) == ([], ["old"])
