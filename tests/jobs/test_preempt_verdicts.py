"""A gang being preempted, judged from its ranks' reports: its ranks ending after the SIGTERM requeue it, no failure."""

from __future__ import annotations

from typing import Any

from factoryctl.errors import NodeError
from factoryctl.jobs.preempting import waiting_reason
from factoryctl.jobs.rank_env import launch_id
from factoryctl.jobs.reconcile import after_verdict
from factoryctl.jobs.verdicts import judge_stopping
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank, StopRequest

T0 = 1_800_000_000.0
STOP = StopRequest("hi", T0 - 10, 30.0)  # asked 10 s ago, 30 s of grace: stops at T0 + 20


def _victim(restarts: int = 1) -> Job:
    alloc = (GpuAllocation("n1", 8), GpuAllocation("n2", 8))
    ranks = (Rank(0, "n1", gpus=tuple(range(8))), Rank(1, "n2", gpus=tuple(range(8))))
    spec = JobSpec(16, name="train", user="ana", command=("python3", "train.py"), walltime_s=3600)
    return Job(
        "lo", spec, T0 - 100, JobState.RUNNING, "stopping: preempted for job hi (priority 9); ...", T0 - 50,
        allocation=alloc, ranks=ranks, restarts=restarts, stopping=STOP,
    )  # fmt: skip


def _report(job: Job, rank: int, running: bool, exit_code: int | None = None, ended: float | None = None) -> Any:
    return {"job": launch_id(job), "rank": rank, "pid": 100 + rank, "running": running, "exit_code": exit_code,
            "started_at": T0 - 49, "ended_at": ended}  # fmt: skip


def test_a_rank_ended_by_its_sigterm_is_no_failure_while_another_still_checkpoints() -> None:
    job = _victim()
    answers = {"n1": [_report(job, 0, False, 143, T0 - 5)], "n2": [_report(job, 1, True)]}
    verdict = judge_stopping(job, answers, T0, 3600)
    assert verdict.outcome == "running"
    after = after_verdict(job, verdict, T0, 3)
    assert (after.state, after.reason, after.stopping) == (JobState.RUNNING, job.reason, STOP)
    assert [r.exit_code for r in after.ranks] == [143, None]


def test_every_rank_ended_requeues_it_without_counting_a_restart() -> None:
    job = _victim(restarts=1)
    answers = {"n1": [_report(job, 0, False, 143, T0 - 5)], "n2": [_report(job, 1, False, -15, T0 - 3)]}
    verdict = judge_stopping(job, answers, T0, 3600)
    assert (verdict.outcome, verdict.ended_at) == ("preempted", T0 - 3)
    after = after_verdict(job, verdict, T0, max_restarts=1)  # its restarts used up: a failure would have failed it
    assert after.state is JobState.PENDING
    assert after.restarts == 1
    assert after.reason == "preempted for job hi; requeued: its ranks ended after its SIGTERM"
    assert (after.stopping, after.ranks, after.allocation, after.started_at) == (None, (), (), None)


def test_its_grace_over_it_is_requeued_whatever_still_runs_but_not_while_a_node_is_silent() -> None:
    """A requeue while n2 was silent started the job elsewhere beside its old rank there: it ran twice at once."""
    job = _victim()
    answers: dict[str, Any] = {"n1": [_report(job, 0, True)], "n2": NodeError("n2", "timeout", "no answer")}
    assert judge_stopping(job, answers, T0, 3600).outcome == "unreachable"  # within its grace: its rank may run
    assert judge_stopping(job, answers, T0 + 20, 3600).outcome == "unreachable"  # and after it, until n2 is told
    verdict = judge_stopping(job, answers, T0 + 20, 3600, lost={"n2": "down for 5 minutes"})
    assert (verdict.outcome, verdict.why) == ("preempted", "killed after its 30s grace")
    answers["n2"] = [_report(job, 1, True)]
    verdict = judge_stopping(job, answers, T0 + 20, 3600)
    assert (verdict.outcome, verdict.why) == ("preempted", "killed after its 30s grace")


def test_ranks_exiting_zero_after_their_sigterm_are_requeued_to_resume() -> None:
    """A script that saves its checkpoint on SIGTERM and exits 0 is not done: requeued, to resume."""
    job = _victim()
    answers = {"n1": [_report(job, 0, False, 0, T0 - 5)], "n2": [_report(job, 1, False, 0, T0 - 3)]}
    after = after_verdict(job, judge_stopping(job, answers, T0, 3600), T0, 3)
    assert (after.state, after.stopping) == (JobState.PENDING, None)
    assert after.reason == "preempted for job hi; requeued: its ranks ended after its SIGTERM"


def test_a_rank_crashing_while_stopping_is_requeued_without_a_restart_counted() -> None:
    """Whatever its exit, and on whatever its node's clock says: the node's times are never compared with ours."""
    job = _victim(restarts=3)
    answers = {"n1": [_report(job, 0, False, 1, T0 - 40)], "n2": [_report(job, 1, False, 0, T0 + 600)]}
    after = after_verdict(job, judge_stopping(job, answers, T0, 3600), T0, max_restarts=3)
    assert (after.state, after.restarts) == (JobState.PENDING, 3)


def test_a_stopping_gang_past_its_walltime_failed() -> None:
    job = _victim()
    answers = {"n1": [_report(job, 0, True)], "n2": [_report(job, 1, True)]}
    assert judge_stopping(job, answers, T0 + 3600, 3600).outcome == "walltime"


def test_a_preempted_job_keeps_saying_so_while_it_waits_without_churn() -> None:
    first = waiting_reason("preempted for job hi; requeued: killed after its 30s grace", "waiting for 2 nodes")
    assert first == "preempted for job hi; waiting for 2 nodes"
    assert waiting_reason(first, "waiting for 2 nodes") == first
    assert waiting_reason("rank 1 on a2 exited 3; requeued", "waiting for 2 nodes") == "waiting for 2 nodes"


def test_a_launchers_workers_still_saving_keep_the_grace_after_the_launcher_ended() -> None:
    """`sh -c 'torchrun ...'`: sh died on the TERM; the next pass requeued and SIGKILLed the workers mid-save."""
    job = _victim()
    answers = {
        "n1": [{**_report(job, 0, False, 143, T0 - 5), "group_running": True}],
        "n2": [{**_report(job, 1, False, 143, T0 - 5), "group_running": False}],
    }
    assert judge_stopping(job, answers, T0, 3600).outcome == "running"
    verdict = judge_stopping(job, answers, T0 + 20, 3600)
    assert (verdict.outcome, verdict.why) == ("preempted", "killed after its 30s grace")


def test_ranks_that_ended_on_their_own_are_not_said_killed_by_a_pass_after_the_grace() -> None:
    """A cron pass after the grace's end said "killed after its grace" of a job that had saved and ended."""
    job = _victim()
    answers = {"n1": [_report(job, 0, False, 0, T0 - 5)], "n2": [_report(job, 1, False, 143, T0 - 3)]}
    verdict = judge_stopping(job, answers, T0 + 600, 3600)
    assert (verdict.outcome, verdict.why) == ("preempted", "its ranks ended after its SIGTERM")
