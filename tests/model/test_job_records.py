"""A job's stored form (model/job_records.py) gives back every field exactly, through JSON text as the store keeps it."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from factoryctl.model.job_records import job_from_record, job_record
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank, StopRequest

#: Any text, lone surrogates included (an argv byte decoded with `surrogateescape`).
texts = st.text(st.characters(blacklist_categories=()), max_size=12)
times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
maybe_times = st.none() | times
numbers = st.none() | st.floats(allow_nan=False)
pairs = st.lists(st.tuples(texts, texts), max_size=3).map(tuple)


@st.composite
def specs(draw: st.DrawFn) -> JobSpec:
    per_node = draw(st.none() | st.integers(1, 8))
    return JobSpec(
        num_gpus=(per_node or 1) * draw(st.integers(1, 64)),
        name=draw(texts),
        user=draw(texts),
        command=tuple(draw(st.lists(texts, max_size=4))),
        gpus_per_node=per_node,
        nodes=tuple(draw(st.lists(texts, max_size=3))),
        labels=draw(pairs),
        priority=draw(st.integers(-(2**40), 2**40)),
        walltime_s=draw(st.none() | st.floats(min_value=1e-3, max_value=1e9)),
        deferrable=draw(st.booleans()),
        max_price=draw(numbers),
        deadline=draw(maybe_times),
        cwd=draw(texts),
        env=draw(pairs),
    )


ranks = st.builds(
    Rank,
    rank=st.integers(0, 512),
    node=texts,
    pid=st.none() | st.integers(1, 2**31),
    exit_code=st.none() | st.integers(-255, 255),
    gpus=st.lists(st.integers(0, 15), max_size=8).map(tuple),
    started_at=maybe_times,
    ended_at=maybe_times,
)
stops = st.none() | st.builds(StopRequest, for_job=texts, requested_at=times, grace_s=st.floats(0, 1e6))


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    return Job(
        id=draw(texts),
        spec=draw(specs()),
        submitted_at=draw(times),
        state=draw(st.sampled_from(JobState)),
        reason=draw(texts),
        started_at=draw(maybe_times),
        ended_at=draw(maybe_times),
        allocation=tuple(draw(st.lists(st.builds(GpuAllocation, texts, st.integers(1, 16)), max_size=4))),
        ranks=tuple(draw(st.lists(ranks, max_size=4))),
        restarts=draw(st.integers(0, 100)),
        energy_kwh=draw(numbers),
        cost=draw(numbers),
        stopping=draw(stops),
        master_port=draw(st.none() | st.integers(1, 65535)),
        last_run=draw(st.none() | st.tuples(times, st.lists(ranks, min_size=1, max_size=3).map(tuple))),
    )


def test_the_strategy_sets_every_field_of_a_job() -> None:
    """A field added to `Job` and not to `jobs()` would never be checked by the round trip below."""
    import dataclasses
    from pathlib import Path

    source = Path(__file__).read_text().split("def jobs(", 1)[1].split("\n\n\n", 1)[0]
    assert [f.name for f in dataclasses.fields(Job) if f"        {f.name}=" not in source] == []


@given(jobs())
def test_every_field_comes_back_through_json_text(job: Job) -> None:
    text = json.dumps(job_record(job))
    assert text.isascii()  # what SQLite stores: no encoding can fail on a lone surrogate
    back = job_from_record(json.loads(text))
    assert back == job
    assert job_record(back) == job_record(job)


def test_the_record_names_every_field_of_the_job_spec_and_rank() -> None:
    """A field added to the model and forgotten here would be lost by the store (the round trip above keeps defaults)."""
    job = Job("j", JobSpec(1), 0.0, ranks=(Rank(0, "n"),))
    record = job_record(job)
    assert set(record) - {"v"} == set(Job.__dataclass_fields__)
    assert set(record["spec"]) == set(JobSpec.__dataclass_fields__)
    assert set(record["ranks"][0]) == set(Rank.__dataclass_fields__)


def test_a_record_without_the_newer_fields_reads_with_their_defaults() -> None:
    record = {"id": "j", "spec": {"num_gpus": 2}, "submitted_at": 5}
    assert job_from_record(record) == Job("j", JobSpec(2), 5.0)


def test_job_json_shows_the_command_and_each_ranks_gpus() -> None:
    spec = JobSpec(4, command=("python", "train.py"), cwd="/w", priority=3, walltime_s=60, gpus_per_node=2)
    job = Job("j", spec, 0.0, ranks=(Rank(0, "n1", 10, gpus=(0, 1)), Rank(1, "n2", gpus=(2, 3))))
    data = job.as_json()
    assert data["command"] == ["python", "train.py"]
    assert (data["cwd"], data["priority"], data["walltime_s"], data["gpus_per_node"]) == ("/w", 3, 60, 2)
    assert [r["gpus"] for r in data["ranks"]] == [[0, 1], [2, 3]]
    json.dumps(data)
