"""Which job holds each GPU (jobs/holders.py): the running jobs' ranks' GPUs, read from a real store, never guessed."""

from __future__ import annotations

from pathlib import Path

from damaged_store import damage

from factoryctl.jobs.holders import holders_of, read_holders
from factoryctl.model.jobs import Job, JobSpec, JobState, Rank
from factoryctl.store.sqlite import Store


def _job(job_id: str, state: JobState, *ranks: Rank) -> Job:
    return Job(job_id, JobSpec(4, command=("sleep", "60")), 1.0e9, state=state, ranks=ranks)


def test_only_starting_and_running_jobs_hold_their_ranks_gpus() -> None:
    holders = holders_of(
        [
            _job("run", JobState.RUNNING, Rank(0, "n1", gpus=(0, 1)), Rank(1, "n2", gpus=(2,))),
            _job("start", JobState.STARTING, Rank(0, "n1", gpus=(3,))),
            _job("done", JobState.SUCCEEDED, Rank(0, "n1", gpus=(2,))),  # ended: its GPUs are free again
            _job("wait", JobState.PENDING),
        ]
    )
    assert [holders.job_id("n1", i) for i in range(4)] == ["run", "run", None, "start"]
    assert (holders.job_id("n2", 2), holders.job_id("n2", 0), holders.job_id("n9", 0)) == ("run", None, None)
    assert (holders.held("n1"), holders.held("n2"), holders.held("n9")) == ({0, 1, 3}, {2}, frozenset())


def test_a_store_read_gives_the_holders_and_no_store_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    assert read_holders(path).held("n1") == frozenset()  # no job was ever submitted: none held, and known
    assert not path.exists()  # reading created no store
    store = Store(path)
    try:
        store.add_job(_job("a1", JobState.RUNNING, Rank(0, "n1", pid=7, gpus=(1, 2))))
        store.add_job(_job("b1", JobState.FAILED, Rank(0, "n1", pid=8, gpus=(0,))))
    finally:
        store.close()
    holders = read_holders(path)
    assert (holders.error, holders.held("n1"), holders.job_id("n1", 2), holders.job_id("n1", 0)) == (
        None,
        {1, 2},
        "a1",
        None,
    )


def test_a_damaged_job_table_is_unknown_with_why_never_free(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    store = Store(path)
    try:
        store.add_job(_job("a1", JobState.RUNNING, Rank(0, "n1", pid=7, gpus=(1,))))
    finally:
        store.close()
    damage(path, "job")
    holders = read_holders(path)
    assert holders.error is not None
    assert "damaged" in holders.error
    assert (holders.held("n1"), holders.job_id("n1", 1)) == (None, None)
