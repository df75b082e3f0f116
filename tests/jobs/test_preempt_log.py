"""The controller's jobs loop logs a preemption's stop, which is no change of state, as it logs starts and ends."""

from __future__ import annotations

import logging

import pytest

from factoryctl.jobs.loop import _log_report
from factoryctl.jobs.records import Change
from factoryctl.jobs.tick import TickReport
from factoryctl.model.jobs import Job, JobSpec, JobState, StopRequest

T0 = 1_800_000_000.0


def test_the_stop_asked_of_a_running_job_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    running = Job("lo", JobSpec(4, name="lo"), T0, JobState.RUNNING, "running on a[1-2]", T0)
    reason = "stopping: preempted for job hi (priority 10); SIGTERM sent, SIGKILL after its 5m grace"
    stopping = running.evolve(reason=reason, stopping=StopRequest("hi", T0 + 5, 300.0))
    refreshed = running.evolve(reason="running on a[1-2]")  # a field brought up to date: no line
    report = TickReport((Change(running, stopping, "job_preempting"), Change(running, refreshed)), 1)
    with caplog.at_level(logging.INFO, logger="factoryctl.controller"):
        _log_report(report)
    assert [r.getMessage() for r in caplog.records] == [f"job lo (lo) running: {reason}"]


def test_a_node_that_did_not_take_a_preemptions_sigterm_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    report = TickReport((), 1, unsignalled=(("a2", "lo.18f"),))
    with caplog.at_level(logging.INFO, logger="factoryctl.controller"):
        _log_report(report)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "a2 did not take the SIGTERM of preempted launch lo.18f: sent when it answers, else SIGKILL")
    ]
