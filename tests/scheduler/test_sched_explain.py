"""`sched explain`: the state of every job at one instant of a replay, and the scheduler's reason for it.

The explained pass must be the replay's own: at any instant, the jobs it shows running, starting and waiting are
exactly those the full replay's schedule has running, starting and waiting then.
"""

from __future__ import annotations

import pytest
from helpers import trace_csv
from test_sched_trace_cli import synthetic_trace

from factoryctl.errors import UsageError
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import parse_trace


@pytest.mark.parametrize("policy", ["fifo", "easy", "default"])
def test_the_explained_pass_is_the_replays_own_at_every_start(policy):
    jobs = parse_trace(synthetic_trace(80, seed=3).splitlines())
    cluster = cluster_nodes(3, 8)
    records = simulate(jobs, cluster, POLICIES[policy]).records
    instants = [*sorted({r.start_s for r in records})[::4], records[-1].end_s + 1.0]
    for at in instants:
        states: dict[str, set[str]] = {}
        for job in explain_at(jobs, cluster, POLICIES[policy], at):
            states.setdefault(job.state, set()).add(job.job_id)
        assert states.get("STARTING", set()) == {r.job_id for r in records if r.start_s == at}, at
        assert states.get("RUNNING", set()) == {r.job_id for r in records if r.start_s < at < r.end_s}, at
        assert states.get("PENDING", set()) == {r.job_id for r in records if r.submit_s <= at < r.start_s}, at


def test_a_large_job_waits_with_a_reserved_start_and_small_ones_backfill():
    trace = trace_csv([("long", 0, 3600, 8), ("big", 10, 600, 16), ("short", 20, 300, 4), ("late", 30, 7200, 4)])
    jobs = parse_trace(trace.splitlines())
    found = {j.job_id: j for j in explain_at(jobs, cluster_nodes(2, 8), POLICIES["easy"], 30.0)}
    assert found["long"].state == "RUNNING"
    assert found["long"].allocation == (("n001", 8),)
    assert found["big"].state == "PENDING"
    assert found["big"].reserved_start_s == 3600.0
    assert found["big"].reserved_nodes == ("n001", "n002")
    assert "reserved start in ~60 min" in found["big"].reason
    assert found["short"].state == "RUNNING"
    assert "since 20 s" in found["short"].reason
    assert found["late"].state == "PENDING"  # it would end after the reserved start on n002
    assert "delay a reserved job" in found["late"].reason


def test_named_jobs_in_every_state_and_an_unknown_one():
    trace = trace_csv([("done", 0, 10, 1), ("now", 5, 100, 8), ("huge", 6, 10, 64), ("later", 500, 10, 1)])
    jobs = parse_trace(trace.splitlines())
    found = explain_at(jobs, cluster_nodes(1, 8), POLICIES["default"], 50.0, ["later", "huge", "done", "now"])
    assert [(j.job_id, j.state) for j in found] == [
        ("later", "NOT_SUBMITTED"), ("huge", "REJECTED"), ("done", "SUCCEEDED"), ("now", "RUNNING"),
    ]  # fmt: skip
    assert "ran on n001:1 from 0 s to 10 s" in found[2].reason
    with pytest.raises(UsageError, match="job nope is not in the trace"):
        explain_at(jobs, cluster_nodes(1, 8), POLICIES["default"], 50.0, ["nope"])


def test_cli_table_json_and_bad_input(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("long", 0, 3600, 8), ("big", 10, 600, 16), ("short", 20, 300, 4)]))
    base = ("sched", "explain", "--trace", str(trace), "--nodes", "2", "--policy", "easy")
    table = cli(*base, "--at", "30")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.split()[:6] == ["JOB", "STATE", "GPUS", "SUBMIT", "S", "WAITED"]
    doc = cli(*base, "--at", "0.5m", "--job", "big", "-o", "json").json()
    (item,) = doc["items"]
    assert item["id"] == "big"
    assert item["state"] == "PENDING"
    assert item["waited_s"] == 20.0
    assert item["reserved_nodes"] == ["n001", "n002"]
    assert item["allocation"] == []
    bad = cli(*base, "--at", "yesterday")
    assert bad.exit_code == 2
    assert "--at must be a time in seconds" in bad.stderr
    assert "hint:" in bad.stderr
    unknown = cli(*base, "--at", "30", "--job", "nope")
    assert unknown.exit_code == 2
    assert "job nope is not in the trace" in unknown.stderr
