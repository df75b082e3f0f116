"""`jobs list` and `jobs show` say when the job states they show may be stale: no controller runs on the store.

A user without a controller (cron's `sched tick` only) read RUNNING for a script that had ended seconds after it
started, until the next tick, and nothing said the listing was the last pass's view. The note is one stderr line
with the last pass's age, never in stdout, not with -q, and not said while a controller holds the store's lock or
no shown job is active. A real store, a real controller lock and a real scheduling pass (`run_tick`) on a
simulated node over the local transport.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.jobs_stale import last_pass_at, stale_note
from factoryctl.jobs.pass_lock import LOCK_NAME
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.store.lock import ControllerLock
from factoryctl.store.sqlite import Store

NOTE = (
    "factoryctl: job states as of the last scheduling pass, ~4 min ago (no controller runs: `factoryctl sched tick`"
    " updates them).\n"
)


@pytest.fixture
def lab(tmp_path: Path, cli: Any) -> Any:
    """`factoryctl -c factory.yaml ...` on one simulated node, its store holding a RUNNING job `r1`, last pass 4 min ago."""
    config = tmp_path / "factory.yaml"
    state = tmp_path / "state"
    config.write_text(f"name: st\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: h100-sxm}}}}\n")
    now = time.time()
    store = Store(state / "factory.db")
    spec = JobSpec(1, name="t1", user="ana", command=("sleep", "3"))
    ranks = (Rank(0, "n1", pid=41, gpus=(0,)),)
    running = Job("r1", spec, now - 300, state=JobState.RUNNING, started_at=now - 250, ranks=ranks)
    store.add_job(running.evolve(allocation=(GpuAllocation("n1", 1),)))
    store.close()
    (state / LOCK_NAME).write_text("1\n")
    os.utime(state / LOCK_NAME, (now - 240, now - 240))

    def run(*args: str) -> Any:
        return cli("-c", str(config), *args)

    run.state = state  # type: ignore[attr-defined]
    return run


def test_a_listing_without_a_controller_says_how_old_its_states_are(lab: Any) -> None:
    listed = lab("jobs", "list")
    assert listed.exit_code == 0, listed.stderr
    assert "RUNNING" in listed.stdout
    assert listed.stderr == NOTE
    shown = lab("jobs", "show", "r1")
    assert "state:     RUNNING" in shown.stdout
    assert shown.stderr == NOTE
    for quiet in (lab("-q", "jobs", "list"), lab("-q", "jobs", "show", "r1")):  # -q drops it
        assert (quiet.exit_code, quiet.stderr) == (0, "")
        assert "RUNNING" in quiet.stdout


@pytest.mark.parametrize(
    "args", [["jobs", "list", "-o", "json"], ["jobs", "show", "r1", "-o", "json"]], ids=["list", "show"]
)
def test_json_stdout_stays_the_document_and_the_note_goes_to_stderr(lab: Any, args: list[str]) -> None:
    done = lab(*args)
    assert done.stderr == NOTE
    document = done.json()
    assert "states as of" not in done.stdout
    assert (document["items"][0] if "items" in document else document)["state"] == "RUNNING"


def test_nothing_is_said_while_a_controller_holds_the_store(lab: Any) -> None:
    lock = ControllerLock(lab.state)
    lock.acquire()
    try:
        assert lab("jobs", "list").stderr == ""
        assert lab("jobs", "show", "r1").stderr == ""
    finally:
        lock.release()
    assert lab("jobs", "list").stderr == NOTE  # the same store, once the controller is gone


def test_nothing_is_said_when_no_shown_job_is_active(lab: Any) -> None:
    store = Store(lab.state / "factory.db")
    store.add_job(Job("p1", JobSpec(1, name="waits", user="ana", command=("true",)), time.time()))
    store.close()
    assert lab("jobs", "list", "--state", "pending").stderr == ""
    assert lab("jobs", "show", "p1").stderr == ""
    assert lab("jobs", "list").stderr == NOTE  # r1 is shown again


def test_a_store_no_pass_ever_ran_on_says_so() -> None:
    assert stale_note(None, 1000.0) == (
        "job states as of no scheduling pass on this store (no controller runs: `factoryctl sched tick` updates them)"
    )
    assert stale_note(1000.0, 1000.0).startswith("job states as of the last scheduling pass, just now (")


def test_the_time_read_is_that_of_a_real_sched_tick(lab: Any) -> None:
    before = time.time()
    ticked = lab("sched", "tick")  # r1's node has no record of it: the pass ends it, and the note with it
    after = time.time()
    assert ticked.exit_code == 0, ticked.stderr
    passed = last_pass_at(lab.state)
    assert passed is not None
    assert before - 1 <= passed <= after + 1  # the file system's clock is coarser than time.time()
    assert lab("jobs", "show", "r1").stderr == ""
