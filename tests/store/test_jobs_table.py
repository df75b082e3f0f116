"""The store's jobs (schema 6, store/jobs.py): migration, lookups by id prefix, listing, compare-and-set, memory."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from factoryctl.errors import ExitCode, UsageError
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState
from factoryctl.store.jobs import JOB_EVENT_KINDS, job_event
from factoryctl.store.rows import Event
from factoryctl.store.schema import MIGRATIONS, SCHEMA_VERSION
from factoryctl.store.sqlite import Store, StoreError

T0 = 1_764_000_000.0
CONFIG = "name: jobs26\nstate_dir: st\nnodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 2}\n"


def schema_5_store(path: Path) -> None:
    """A store as the factoryctl before jobs left it (schema 5), with an event and a node in it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    for migration in MIGRATIONS[:5]:
        db.executescript(migration)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO node (id, name, drained) VALUES (1, 'n1', 1)")
    db.execute(
        "INSERT INTO event (t_ms, node, kind, severity, message) VALUES (?, 'n1', 'drain', 'info', 'old drain')",
        (int(T0 * 1000),),
    )
    db.commit()
    db.close()
    path.chmod(0o600)


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def job(job_id: str, at: float, state: JobState = JobState.PENDING, user: str = "ana") -> Job:
    return Job(job_id, JobSpec(2, user=user, command=("python", "t.py"), env=(("K", "V"),)), at, state)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "factory.db")
    yield opened
    opened.close()


def test_a_schema_5_store_migrates_to_the_job_table_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    schema_5_store(path)
    store = Store(path)
    assert user_version(path) == SCHEMA_VERSION == 6
    assert [e.message for e in store.events(T0 - 1, kind="drain")] == ["old drain"]
    assert list(store.drained_nodes()) == ["n1"]
    store.add_job(job("a1", T0))
    assert store.job("a1") == job("a1", T0)
    store.close()


def test_a_reader_of_a_schema_5_store_finds_no_jobs_and_leaves_it_at_5(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    schema_5_store(path)
    reader = Store(path, readonly=True)
    assert reader.jobs() == []
    assert reader.job("a1") is None
    with pytest.raises(UsageError, match="no job matches a1"):
        reader.find_job("a1")
    assert reader.scheduler_memory() == (frozenset(), None)
    assert [e.message for e in reader.events(T0 - 1)] == ["old drain"]
    reader.close()
    assert user_version(path) == 5


def test_a_read_only_command_reads_a_schema_5_store(cli: Callable[..., object], tmp_path: Path) -> None:
    (tmp_path / "factory.yaml").write_text(CONFIG)
    path = tmp_path / "st" / "factory.db"
    schema_5_store(path)
    result = cli("-c", str(tmp_path / "factory.yaml"), "events", "--since", "100000d", "-o", "json")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    items = json.loads(result.stdout)["items"]  # type: ignore[attr-defined]
    assert [e["message"] for e in items] == ["old drain"]
    assert user_version(path) == 5


def test_find_job_takes_an_exact_id_or_a_unique_prefix(store: Store) -> None:
    for number, job_id in enumerate(("abc2", "abd3", "abd4", "xyz")):
        store.add_job(job(job_id, T0 + number))
    assert store.find_job("abc2").id == "abc2"
    assert store.find_job("abc").id == "abc2"
    assert store.find_job("x").id == "xyz"
    store.add_job(job("xy", T0 + 9))
    assert store.find_job("xy").id == "xy"  # an exact id wins over the longer one it is a prefix of
    with pytest.raises(UsageError) as none:
        store.find_job("q")
    assert (none.value.message, none.value.hint) == (
        "no job matches q.",
        "`factoryctl jobs list --all` lists every job.",
    )
    assert none.value.exit_code == ExitCode.USAGE
    with pytest.raises(UsageError) as several:
        store.find_job("ab")
    assert several.value.message == "ab matches 3 jobs: abc2, abd3, abd4."
    assert several.value.hint == "type more of the job's id."
    with pytest.raises(UsageError, match="no job matches %"):
        store.find_job("%")  # not a LIKE pattern


def test_an_ambiguous_prefix_of_many_jobs_names_the_first_and_counts_all(store: Store) -> None:
    for number in range(8):
        store.add_job(job(f"j{number}", T0 + number))
    with pytest.raises(UsageError) as several:
        store.find_job("j")
    assert several.value.message == "j matches 8 jobs: j0, j1, j2, j3, j4 and 3 more."


def test_a_duplicate_id_is_refused_and_the_first_job_kept(store: Store) -> None:
    store.add_job(job("a1", T0))
    with pytest.raises(StoreError, match="already has a job a1"):
        store.add_job(job("a1", T0 + 5, user="bob"))
    assert store.job("a1") == job("a1", T0)


def test_jobs_are_listed_by_state_in_submit_order(store: Store) -> None:
    store.add_job(job("c", T0 + 2, JobState.RUNNING))
    store.add_job(job("a", T0, JobState.PENDING))
    store.add_job(job("b", T0 + 1, JobState.SUCCEEDED))
    store.add_job(job("d", T0 + 3, JobState.DEFERRED))
    assert [j.id for j in store.jobs()] == ["a", "b", "c", "d"]
    assert [j.id for j in store.jobs({JobState.PENDING, JobState.DEFERRED})] == ["a", "d"]
    assert [j.id for j in store.jobs([JobState.RUNNING])] == ["c"]
    assert store.jobs(()) == []
    assert [j.id for j in store.jobs(limit=2)] == ["c", "d"]  # the newest two, oldest first
    assert [j.id for j in store.jobs({JobState.PENDING, JobState.SUCCEEDED}, limit=1)] == ["b"]


def test_update_job_writes_only_over_the_state_it_expects(store: Store, tmp_path: Path) -> None:
    store.add_job(job("a1", T0))
    running = job("a1", T0, JobState.RUNNING).evolve(allocation=(GpuAllocation("n1", 2),), started_at=T0 + 1)
    assert store.update_job(running, JobState.PENDING, [job_event(running, T0 + 1)])
    assert store.job("a1") == running
    cancelled = running.evolve(state=JobState.CANCELLED, reason="cancelled by ana")
    other = Store(tmp_path / "factory.db")  # another command (`jobs cancel`) on its own connection
    assert other.update_job(cancelled, JobState.RUNNING, [job_event(cancelled, T0 + 2)])
    other.close()
    requeued = running.evolve(state=JobState.PENDING, reason="stale")
    assert not store.update_job(requeued, JobState.RUNNING, [job_event(requeued, T0 + 3)])  # the tick saw RUNNING
    assert store.job("a1") == cancelled
    assert [j.id for j in store.jobs({JobState.CANCELLED})] == ["a1"]
    assert [(e.kind, e.message) for e in store.events(T0, kind=JOB_EVENT_KINDS)] == [
        ("job_running", "job a1 (a1) running on n1:2"),
        ("job_cancelled", "job a1 (a1) cancelled: cancelled by ana"),
    ]
    assert not store.update_job(job("nope", T0), JobState.PENDING)


def test_a_failed_job_is_a_warning_event() -> None:
    failed = job("a1", T0, JobState.FAILED).evolve(reason="rank 1 exited 3")
    said = "job a1 (a1) failed: rank 1 exited 3"
    assert job_event(failed, T0 + 5) == Event(T0 + 5, "job_failed", said, severity="warning")
    assert job_event(job("a1", T0), T0).severity == "info"
    named = Job("b2", JobSpec(1, name="x\x1b[2Jy"), T0)  # a name someone typed: no escape sequence for others
    assert job_event(named, T0).message == "job b2 (x\\x1b[2Jy) pending"
    assert set(JOB_EVENT_KINDS) == {f"job_{s.value.lower()}" for s in JobState}


def test_the_scheduler_memory_is_kept_between_connections(store: Store, tmp_path: Path) -> None:
    assert store.scheduler_memory() == (frozenset(), None)
    store.set_scheduler_memory(frozenset({"b2", "a1"}), "a1")
    other = Store(tmp_path / "factory.db", readonly=True)
    assert other.scheduler_memory() == (frozenset({"a1", "b2"}), "a1")
    store.set_scheduler_memory((), None)
    assert other.scheduler_memory() == (frozenset(), None)
    other.close()


def test_update_jobs_judges_each_compare_and_set_on_its_own_in_one_transaction(store: Store) -> None:
    for i in range(3):
        store.add_job(job(f"b{i}", T0 + i))
    running = job("b1", T0 + 1, JobState.RUNNING)
    store.update_job(running, expect=JobState.PENDING)  # b1 moved on before the batch
    done = [job(f"b{i}", T0 + i).evolve(reason=f"r{i}") for i in range(3)]
    ev = Event(T0, "job_pending", "x")
    assert store.update_jobs([(j, JobState.PENDING, [ev]) for j in done]) == [True, False, True]
    assert [j.reason for j in store.jobs()] == ["r0", "", "r2"]
    assert store.jobs()[1].state is JobState.RUNNING
    assert len([e for e in store.events(0.0) if e.message == "x"]) == 2  # the refused one's event not written


def test_jobs_that_ended_lately_are_found_through_the_state_and_time_index(store: Store, tmp_path: Path) -> None:
    """`jobs list` and the dashboard ask for the jobs ended in the last hour: never a read of a year of ended jobs."""
    from store_rows import rows

    from factoryctl.store.job_board import jobs_ended

    old, fresh = job("e1", T0, JobState.SUCCEEDED), job("e2", T0 + 1, JobState.FAILED)
    store.add_job(old)
    store.add_job(fresh)
    assert {j.id for j in jobs_ended(store, 0.0, 10)} == {"e1", "e2"}
    plan = rows(
        store.path,
        "EXPLAIN QUERY PLAN SELECT record FROM job WHERE state IN ('SUCCEEDED') AND updated_ms >= 0 ORDER BY updated_ms",
    )
    assert any("USING INDEX job_state (state=? AND updated_ms>?)" in str(step) for step in plan), plan


def test_a_job_is_found_by_its_name_when_no_id_starts_so(store: Store) -> None:
    named = [
        Job("n1", JobSpec(1, name="train"), T0, JobState.SUCCEEDED),
        Job("n2", JobSpec(1, name="train"), T0 + 1, JobState.RUNNING),
        Job("n3", JobSpec(1, name="eval"), T0 + 2),
        Job("n4", JobSpec(1, name="eval"), T0 + 3),
    ]
    for job in named:
        store.add_job(job)
    assert store.find_job("train").id == "n2"  # the one not ended
    with pytest.raises(UsageError, match="2 jobs not ended are named eval: n3, n4"):
        store.find_job("eval")
    assert store.find_job("n1").id == "n1"  # an id wins over a name
    with pytest.raises(UsageError, match="no job matches nothing"):
        store.find_job("nothing")


def test_events_kind_offers_every_job_event_the_store_writes() -> None:
    """`events --kind job_preempted` was refused as an unknown kind: the CLI's list lagged the executor's kinds."""
    from factoryctl.cli.events import EVENT_KINDS
    from factoryctl.store.jobs import PREEMPT_EVENT_KINDS

    assert set(JOB_EVENT_KINDS) | set(PREEMPT_EVENT_KINDS) <= set(EVENT_KINDS)
