"""`factoryctl jobs submit / list / show / cancel / logs` against a real store: what a user types and reads.

The executor (tests/jobs) starts and stops ranks; here the queue as the commands write and print it: a submit writes
a PENDING job of the effective user and prints its id, a job that could never run is refused before anything is
written, the listing hides what ended long ago, a prefix names a job, someone else's job is not cancelled without
root and --force.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.store.sqlite import Store

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n[1-2]: {{transport: local, sim: {{profile: h100-sxm, gpus: 4, seed: 3}}, labels: {{gpu: h100}}}}
  n3: {{transport: local, sim: {{profile: h100-sxm, gpus: 8, seed: 3}}}}
"""
ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def lab(tmp_path: Path, cli: Any) -> Any:
    """`factoryctl -c factory.yaml ...` on a 3-node simulated lab (16 GPUs), its store in tmp_path."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY.format(state=tmp_path / "state"))

    def run(*args: str) -> Any:
        return cli("-c", str(config), *args)

    run.store_path = tmp_path / "state" / "factory.db"  # type: ignore[attr-defined]
    return run


def _add(lab: Any, job: Job) -> None:
    store = Store(lab.store_path)
    try:
        store.add_job(job)
    finally:
        store.close()


def _stored(lab: Any) -> list[Job]:
    if not lab.store_path.exists():
        return []
    store = Store(lab.store_path, readonly=True)
    try:
        return store.jobs()
    finally:
        store.close()


def test_submit_writes_a_pending_job_of_this_user_and_prints_its_id(
    lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    done = lab("jobs", "submit", "--gpus", "8", "--name", "train", "python", "-u", "train.py", "--lr", "1")
    assert done.exit_code == 0, done.stderr
    (job,) = _stored(lab)
    assert done.stdout == f"{job.id}\n"
    assert "PENDING" in done.stderr
    assert "sched tick" in done.stderr
    assert (job.state, job.user, job.name, job.num_gpus) == (JobState.PENDING, ME, "train", 8)
    assert job.spec.command == ("python", "-u", "train.py", "--lr", "1")  # every word from CMD on is the command's
    assert job.spec.cwd == str(tmp_path)
    quiet = lab("-q", "jobs", "submit", "--env", "NCCL_DEBUG=INFO", "--walltime", "1h30m", "--", "true")
    assert quiet.stderr == ""
    assert quiet.stdout.strip() in {j.id for j in _stored(lab)}


def test_submit_json_is_the_job_object(lab: Any) -> None:
    done = lab("jobs", "submit", "--gpus", "8", "--gpus-per-node", "4", "--label", "gpu=h100", "-o", "json", "true")
    assert done.exit_code == 0, done.stderr
    job = done.json()
    assert job["state"] == "PENDING"
    assert job["gpus_per_node"] == 4
    assert job["command"] == ["true"]
    assert "items" not in job


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--gpus", "17"], "the job asks for 17 GPUs; the inventory has 16"),
        (["--gpus", "8", "--gpus-per-node", "8", "--label", "gpu=h100"], "1 node(s) with 8 GPUs each"),
        (["--label", "gpu=a100"], "no node has the label gpu=a100"),
        (["--nodes", "n9"], "n9"),
        (["--env", "RANK=3"], "--env RANK is set by factoryctl"),
        (["--gpus", "6", "--gpus-per-node", "4"], "--gpus 6 is not a multiple of --gpus-per-node 4"),
        (["--deadline", "12h"], "--max-price and --deadline are for a --deferrable job"),
        (["--deferrable", "--deadline", "2020-01-01T00:00Z"], "is not in the future"),
        (["--walltime", "90"], "--walltime"),
    ],
)
def test_a_job_that_could_never_run_is_refused_and_nothing_is_written(lab: Any, args: list[str], said: str) -> None:
    done = lab("jobs", "submit", *args, "--", "true")
    assert done.exit_code == 2, done.stderr
    assert said in done.stderr
    assert done.stdout == ""
    assert _stored(lab) == []


def _job(job_id: str, state: JobState, user: str = ME, ended_ago: float | None = None, **changes: Any) -> Job:
    now = time.time()
    ended = None if ended_ago is None else now - ended_ago
    spec = JobSpec(4, name=f"job-{job_id}", user=user, command=("sleep", "60"))
    return Job(job_id, spec, now - 7200, state=state, ended_at=ended, **changes)


def test_the_listing_shows_waiting_running_and_recently_ended_jobs(lab: Any) -> None:
    running = _job(
        "b2",
        JobState.RUNNING,
        started_at=time.time() - 65,
        allocation=(GpuAllocation("n1", 2), GpuAllocation("n2", 2)),
    )
    for job in (_job("a2", JobState.PENDING, user="alice"), running, _job("c2", JobState.FAILED, ended_ago=60)):
        _add(lab, job)
    _add(lab, _job("d2", JobState.SUCCEEDED, ended_ago=7200))
    table = lab("jobs").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "USER", "STATE", "GPUS", "NODES", "TIME", "REASON"]
    assert [line.split()[0] for line in table[1:]] == ["a2", "b2", "c2"]  # submit order; d2 ended 2 h ago
    assert table[2].split()[3:6] == ["RUNNING", "4", "n[1-2]"]
    assert table[2].split()[6].startswith("1:")  # ran 65 s: squeue's M:SS
    assert [j["id"] for j in lab("jobs", "--all", "-o", "json").json()["items"]] == ["a2", "b2", "c2", "d2"]
    listed = lab("jobs", "list", "--state", "succeeded,Failed", "-o", "json").json()
    assert [j["id"] for j in listed["items"]] == ["c2", "d2"]
    assert listed["errors"] == []
    assert [line.split()[0] for line in lab("jobs", "list", "--user", "alice", "--no-header").stdout.splitlines()] == [
        "a2"
    ]
    assert "SUBMITTED" in lab("jobs", "list", "-o", "wide").stdout


def test_no_store_yet_lists_no_job(lab: Any) -> None:
    done = lab("jobs", "list", "-o", "json")
    assert (done.exit_code, done.json()["items"]) == (0, [])
    assert not lab.store_path.exists()  # listing creates no store


def test_show_takes_a_unique_prefix_and_prints_one_object(lab: Any) -> None:
    ranks = (Rank(0, "n1", pid=41, gpus=(0, 1)), Rank(1, "n2", pid=42, gpus=(0, 1)))
    _add(lab, _job("kx2", JobState.RUNNING, started_at=time.time(), ranks=ranks))
    _add(lab, _job("ky2", JobState.PENDING))
    shown = lab("jobs", "show", "kx", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["id"] == "kx2"
    assert shown.json()["ranks"][1]["gpus"] == [0, 1]
    text = lab("jobs", "show", "kx").stdout
    assert "command:   sleep 60" in text
    assert "  1: n2  gpus 0-1  pid 42  running" in text
    ambiguous = lab("jobs", "show", "k")
    assert ambiguous.exit_code == 2
    assert "k matches 2 jobs: kx2, ky2" in ambiguous.stderr


def test_cancel_a_waiting_job_of_ones_own(lab: Any) -> None:
    _add(lab, _job("p2", JobState.PENDING))
    _add(lab, _job("q2", JobState.SUCCEEDED, ended_ago=10))
    done = lab("jobs", "cancel", "p2", "q2", "-r", "wrong data")
    assert done.exit_code == 0, done.stderr
    assert done.stdout == "cancelled p2\n"
    assert "q2 had already ended (SUCCEEDED)" in done.stderr
    states = {j.id: (j.state, j.reason) for j in _stored(lab)}
    assert states["p2"] == (JobState.CANCELLED, f"cancelled by {ME}: wrong data")
    assert states["q2"][0] is JobState.SUCCEEDED


@pytest.mark.skipif(os.geteuid() != 0, reason="root's --force is what is tested")
def test_someone_elses_job_needs_force(lab: Any) -> None:
    _add(lab, _job("r2", JobState.PENDING, user="alice"))
    _add(lab, _job("s2", JobState.PENDING))
    refused = lab("jobs", "cancel", "s2", "r2")
    assert refused.exit_code == 2
    assert "alice" in refused.stderr
    assert "--force" in refused.stderr
    assert {j.state for j in _stored(lab)} == {JobState.PENDING}  # neither was cancelled
    forced = lab("jobs", "cancel", "--force", "s2", "r2")
    assert forced.exit_code == 0, forced.stderr
    assert {j.state for j in _stored(lab)} == {JobState.CANCELLED}


def test_logs_of_a_job_that_never_ran_say_so(lab: Any) -> None:
    _add(lab, _job("t2", JobState.PENDING))
    done = lab("jobs", "logs", "t2")
    assert done.exit_code == 2
    assert "has never run" in done.stderr


def test_an_unknown_id_is_a_usage_error(lab: Any) -> None:
    assert lab("jobs", "show", "zz").exit_code == 2  # no store yet
    _add(lab, _job("u2", JobState.PENDING))
    done = lab("jobs", "cancel", "zz")
    assert done.exit_code == 2
    assert "no job matches zz" in done.stderr


def _offered(config: Path, words: str) -> list[str]:
    """What bash completion offers for the last of `words` (after `factoryctl -c CONFIG`), asked as bash asks."""
    line = f"factoryctl -c {config} {words}"
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": line}
    env["COMP_CWORD"] = str(len(line.split(" ")) - 1)
    done = subprocess.run([sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_job_ids_complete_from_the_store(lab: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    assert _offered(config, "jobs show ") == []  # no store yet: nothing, and no error
    _add(lab, _job("m2", JobState.PENDING))
    _add(lab, _job("m3", JobState.FAILED, ended_ago=10))
    _add(lab, _job("n2", JobState.RUNNING))
    assert _offered(config, "jobs show m") == ["m3", "m2"]  # newest first
    assert _offered(config, "jobs logs ") == ["n2", "m3", "m2"]
    assert _offered(config, "jobs cancel ") == ["n2", "m2"]  # an ended job cannot be cancelled
    assert _offered(config, "jobs list --state r") == ["running"]


def test_plain_jobs_and_its_options_are_the_listing(lab: Any) -> None:
    _add(lab, _job("v2", JobState.SUCCEEDED, ended_ago=7200))
    assert lab("jobs").stdout.splitlines()[1:] == []
    assert [item["id"] for item in lab("jobs", "--all", "-o", "json").json()["items"]] == ["v2"]
    typo = lab("jobs", "lsit")
    assert typo.exit_code == 2
    assert "did you mean 'list'" in typo.stderr


def test_logs_of_a_rank_that_never_started_name_the_job_not_its_launch(lab: Any) -> None:
    ranks = (Rank(0, "n1", pid=41, gpus=(0, 1)), Rank(1, "n2", pid=42, gpus=(0, 1)))
    _add(lab, _job("w2", JobState.RUNNING, started_at=time.time(), ranks=ranks))  # no node ever launched it
    done = lab("jobs", "logs", "w2", "--rank", "1")
    assert done.exit_code == 2
    said = "factoryctl: n2: rank 1 of job w2 has no output here: it never started on this node."
    assert done.stderr.splitlines()[0] == said
    assert "w2." not in done.stderr  # the launch's own id is the agent's, not the user's


def test_the_states_jobs_list_takes_are_the_models() -> None:
    """cli/jobs.py writes the states out (--help must not import the model); they are JobState's, in its order."""
    from factoryctl.cli.jobs import STATES
    from factoryctl.model.jobs import JobState

    assert tuple(s.value for s in JobState) == STATES


def test_show_tells_the_rank_the_reason_names_from_those_stopped_with_the_gang(lab: Any) -> None:
    ranks = (Rank(0, "n1", pid=41, gpus=(0, 1)), Rank(1, "n2", pid=42, gpus=(0, 1)))
    reason = "rank 1 on n2 is lost (down since 10 min)"
    _add(lab, _job("lz2", JobState.FAILED, ended_ago=5, started_at=time.time() - 60, ranks=ranks, reason=reason))
    text = lab("jobs", "show", "lz2").stdout
    assert "  0: n1  gpus 0-1  pid 41  stopped with its gang" in text
    assert "  1: n2  gpus 0-1  pid 42  no exit status (see reason)" in text


def test_the_listing_before_any_store_says_why_it_is_empty(lab: Any) -> None:
    listed = lab("jobs", "list", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert listed.json()["items"] == []
    assert f"no job yet: there is no store at {lab.store_path}; `factoryctl jobs submit` creates it." in listed.stderr
    assert lab("-q", "jobs", "list").stderr == ""  # -q drops the note, as for every empty query
    assert not lab.store_path.exists()
