"""A gang's verdict from its ranks' reports, and what the executor writes for it: all or nothing to the end."""

from __future__ import annotations

from typing import Any

from factoryctl.errors import NodeError
from factoryctl.jobs.rank_env import launch_id
from factoryctl.jobs.reconcile import after_verdict
from factoryctl.jobs.verdicts import judge
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank

T0 = 1_800_000_000.0


def _gang(state: JobState = JobState.RUNNING, restarts: int = 0) -> Job:
    alloc = (GpuAllocation("n1", 8), GpuAllocation("n2", 8))
    ranks = (Rank(0, "n1", gpus=tuple(range(8))), Rank(1, "n2", gpus=tuple(range(8))))
    spec = JobSpec(16, name="train", user="ana", command=("python3", "train.py"), walltime_s=3600)
    return Job("j1", spec, T0 - 100, state, started_at=T0 - 50, allocation=alloc, ranks=ranks, restarts=restarts)


def _report(job: Job, rank: int, running: bool, exit_code: int | None = None, ended: float | None = None) -> Any:
    return {"job": launch_id(job), "rank": rank, "pid": 100 + rank, "running": running, "exit_code": exit_code,
            "started_at": T0 - 49, "ended_at": ended}  # fmt: skip


def test_every_rank_running_is_running_and_a_starting_gang_becomes_running() -> None:
    job = _gang(JobState.STARTING)
    answers = {"n1": [_report(job, 0, True)], "n2": [_report(job, 1, True)]}
    verdict = judge(job, answers, T0, 3600)
    assert verdict.outcome == "running"
    after = after_verdict(job, verdict, T0, 3)
    assert after.state is JobState.RUNNING
    assert [r.pid for r in after.ranks] == [100, 101]
    assert after.reason == "running on n[1-2]"


def test_all_ranks_exiting_zero_succeeds_at_the_last_end() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, False, 0, T0 - 5)], "n2": [_report(job, 1, False, 0, T0 - 2)]}
    after = after_verdict(job, judge(job, answers, T0, 3600), T0, 3)
    assert after.state is JobState.SUCCEEDED
    assert after.ended_at == T0 - 2
    assert [r.exit_code for r in after.ranks] == [0, 0]


def test_one_rank_done_while_the_other_runs_is_still_running() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, False, 0, T0 - 5)], "n2": [_report(job, 1, True)]}
    assert judge(job, answers, T0, 3600).outcome == "running"


def test_a_failed_rank_requeues_the_gang_with_one_more_restart() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, True)], "n2": [_report(job, 1, False, 3, T0 - 1)]}
    verdict = judge(job, answers, T0, 3600)
    assert verdict.outcome == "failed"
    assert verdict.why == "rank 1 on n2 exited 3"
    after = after_verdict(job, verdict, T0, 3)
    assert after.state is JobState.PENDING
    assert after.restarts == 1
    assert after.allocation == ()
    assert after.ranks == ()
    assert after.started_at is None
    assert after.reason == "rank 1 on n2 exited 3; requeued (restart 1 of 3)"


def test_a_gang_out_of_restarts_fails_for_good() -> None:
    job = _gang(restarts=3)
    answers = {"n1": [_report(job, 0, False, None, None)], "n2": [_report(job, 1, True)]}
    after = after_verdict(job, judge(job, answers, T0, 3600), T0, 3)
    assert after.state is JobState.FAILED
    assert after.ended_at == T0
    assert after.reason == "rank 0 on n1 ended without an exit status; failed after 3 restarts"


def test_a_rank_its_node_has_no_record_of_fails_the_gang() -> None:
    job = _gang()
    answers: dict[str, Any] = {"n1": [_report(job, 0, True)], "n2": []}
    verdict = judge(job, answers, T0, 3600)
    assert verdict.outcome == "failed"
    assert "rank 1 on n2 is gone" in verdict.why


def test_another_launch_of_the_same_job_is_not_taken_for_this_one() -> None:
    job = _gang()
    older = job.evolve(started_at=T0 - 5000)
    answers = {"n1": [_report(older, 0, False, 0, T0 - 4000)], "n2": [_report(job, 1, True)]}
    assert judge(job, answers, T0, 3600).outcome == "failed"  # rank 0 of THIS launch is gone


def test_an_unanswering_node_leaves_the_gang_as_it_was_with_the_reason() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, True)], "n2": NodeError("n2", "timeout", "timed out after 15 s")}
    verdict = judge(job, answers, T0, 3600)
    assert verdict.outcome == "unreachable"
    after = after_verdict(job, verdict, T0, 3)
    assert after.state is JobState.RUNNING
    assert after.reason == "n2 did not answer: timed out after 15 s"


def test_a_gang_past_its_walltime_fails() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, True)], "n2": [_report(job, 1, True)]}
    verdict = judge(job, answers, job.started_at + 3600, 3600)  # type: ignore[operator]
    assert verdict.outcome == "walltime"
    assert verdict.why == "reached its walltime of 1h"
    assert after_verdict(job, verdict, T0, 3).state is JobState.FAILED


def test_an_interrupted_launch_is_requeued_without_counting_a_restart() -> None:
    job = _gang(JobState.STARTING)
    answers: dict[str, Any] = {"n1": [_report(job, 0, True)], "n2": []}
    after = after_verdict(job, judge(job, answers, T0, 3600), T0, 3)
    assert after.state is JobState.PENDING
    assert after.restarts == 0
    assert after.reason.startswith("its launch was interrupted (rank 1 on n2 is gone")


def test_a_rank_failed_on_an_answering_node_fails_the_gang_while_another_is_silent() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, False, 3, T0 - 1)], "n2": NodeError("n2", "timeout", "timed out")}
    assert judge(job, answers, T0, 3600).outcome == "failed"


def test_the_walltime_ends_a_gang_whose_node_is_silent() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, True)], "n2": NodeError("n2", "refused", "refused the connection")}
    assert judge(job, answers, T0 + 3600, 3600).outcome == "walltime"


def test_a_silent_node_down_for_long_has_lost_its_rank_and_the_gang_is_requeued() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, True)], "n2": NodeError("n2", "timeout", "timed out")}
    assert judge(job, answers, T0, 3600, lost={}).outcome == "unreachable"
    verdict = judge(job, answers, T0, 3600, lost={"n2": "its node has been down since 2027-01-15T08:00:00.000Z"})
    assert verdict.outcome == "failed"
    assert verdict.why == "rank 1 on n2 is lost (its node has been down since 2027-01-15T08:00:00.000Z)"
    assert after_verdict(job, verdict, T0, 3).state is JobState.PENDING


def test_a_gang_that_ended_well_before_its_walltime_succeeds_however_late_the_pass() -> None:
    job = _gang()
    answers = {"n1": [_report(job, 0, False, 0, T0 - 5)], "n2": [_report(job, 1, False, 0, T0 - 2)]}
    assert judge(job, answers, T0 + 7200, 3600).outcome == "succeeded"  # a pass two hours late (a stopped controller)


def test_the_walltime_is_judged_on_the_nodes_boot_clock_not_a_stepped_wall_clock() -> None:
    job = _gang()
    running = [{**_report(job, 0, True), "running_s": 600.0}], [{**_report(job, 1, True), "running_s": 601.0}]
    answers = {"n1": running[0], "n2": running[1]}
    assert judge(job, answers, T0 + 3600, 3600).outcome == "running"  # the wall clock jumped an hour ahead
    assert judge(job, answers, T0, 600).outcome == "walltime"  # 601 s on n2's boot clock
