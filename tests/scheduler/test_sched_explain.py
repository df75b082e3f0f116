"""`sched explain`: the state of every job at one instant of a replay, and the scheduler's reason for it.

The explained pass must be the replay's own: at any instant, the jobs it shows running, starting and waiting are
exactly those the full replay's schedule has running, starting and waiting then.
"""

from __future__ import annotations

import dataclasses
import itertools
import random

import pytest
from helpers import trace_csv
from test_sched_trace_cli import synthetic_trace

from factoryctl.errors import UsageError
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.replay_explain import explain_at
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob, parse_trace


def _with_zero_durations(text: str) -> str:
    """Every fifth job of the trace lasts 0 s: it ends as it starts, and the replay runs another pass then."""
    lines = text.splitlines()
    for i in range(1, len(lines), 5):
        cells = lines[i].split(",")
        cells[2] = "0"
        lines[i] = ",".join(cells)
    return "\n".join(lines) + "\n"


def _uneven_trace(count: int = 80, seed: int = 4) -> str:
    """Gangs that do not split evenly over 8-GPU nodes (11 as 6 + 5, 13 as 7 + 6) among ordinary jobs."""
    rng = random.Random(seed)
    rows, t = [], 0.0
    for i in range(count):
        t += rng.expovariate(1 / 300)
        rows.append((f"u{i}", round(t), rng.randint(60, 20000), rng.choice([1, 3, 5, 8, 11, 13])))
    return trace_csv(rows)


@pytest.mark.parametrize("variant", ["plain", "zero", "uneven"])
@pytest.mark.parametrize("policy", ["fifo", "easy", "default"])
def test_the_explained_pass_is_the_replays_own_at_every_start(policy, variant):
    text = _uneven_trace() if variant == "uneven" else synthetic_trace(80, seed=3)
    jobs = parse_trace((_with_zero_durations(text) if variant == "zero" else text).splitlines())
    zero = variant == "zero"
    cluster = cluster_nodes(3, 8)
    records = simulate(jobs, cluster, POLICIES[policy]).records
    events = sorted({r.start_s for r in records} | {r.end_s for r in records} | {j.submit_s for j in jobs})
    between = [(a + b) / 2 for a, b in itertools.pairwise(events)][::3]  # no pass there: nothing may start
    instants = [*sorted({r.start_s for r in records})[:: 2 if zero else 4], *between, records[-1].end_s + 1.0]
    for at in instants:
        states: dict[str, set[str]] = {}
        for job in explain_at(jobs, cluster, POLICIES[policy], at).jobs:
            states.setdefault(job.state, set()).add(job.job_id)
        assert states.get("STARTING", set()) == {r.job_id for r in records if r.start_s == at}, at
        assert states.get("RUNNING", set()) == {r.job_id for r in records if r.start_s < at < r.end_s}, at
        assert states.get("PENDING", set()) == {r.job_id for r in records if r.submit_s <= at < r.start_s}, at


def test_a_large_job_waits_with_a_reserved_start_and_small_ones_backfill():
    trace = trace_csv([("long", 0, 3600, 8), ("big", 10, 600, 16), ("short", 20, 300, 4), ("late", 30, 7200, 4)])
    jobs = parse_trace(trace.splitlines())
    found = {j.job_id: j for j in explain_at(jobs, cluster_nodes(2, 8), POLICIES["easy"], 30.0).jobs}
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
    found = explain_at(jobs, cluster_nodes(1, 8), POLICIES["default"], 50.0, ["later", "huge", "done", "now"]).jobs
    assert [(j.job_id, j.state) for j in found] == [
        ("later", "NOT_SUBMITTED"), ("huge", "REJECTED"), ("done", "SUCCEEDED"), ("now", "RUNNING"),
    ]  # fmt: skip
    assert "ran on n001:1 from 0 s to 10 s" in found[2].reason
    twice = explain_at(jobs, cluster_nodes(1, 8), POLICIES["default"], 50.0, ["now", "now"]).jobs
    assert [j.job_id for j in twice] == ["now"]
    with pytest.raises(UsageError, match="job 'nope' is not in the trace"):
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
    assert "job 'nope' is not in the trace" in unknown.stderr


@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("nan", "a number of seconds"),
        ("inf", "at most 1e+11 seconds"),
        ("-5", "must not be negative"),
        ("1e12", "at most 1e+11"),
    ],
)
def test_cli_refuses_times_a_trace_cannot_have(cli, tmp_path, at, message):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("a", 0, 10, 1)]))
    result = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", at)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "hint:" in result.stderr


def test_cli_accepts_exponents_and_units_in_any_case(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("a", 0, 400000, 1)]))
    for at in ("1e5", "72H", "3d"):
        result = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", at, "-o", "json")
        assert result.exit_code == 0, result.stderr
        assert result.json()["items"][0]["state"] == "RUNNING"


def test_cli_warns_about_skipped_jobs_and_says_why_a_listing_is_empty(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("small", 100, 10, 1), ("huge", 101, 10, 64)]))
    base = ("sched", "explain", "--trace", str(trace), "--nodes", "1")
    skipped = cli(*base, "--at", "105", "--job", "huge", "-o", "json")
    assert skipped.exit_code == 0
    assert "1 job(s) can never run on this cluster and were skipped: huge" in skipped.stderr
    (item,) = skipped.json()["items"]
    assert item["state"] == "REJECTED"
    assert item["waited_s"] is None
    early = cli(*base, "--at", "50")
    assert early.exit_code == 0
    assert "no job that fits the cluster has arrived by 50 s" in early.stderr
    assert "the first one arrives at 100 s" in early.stderr
    late = cli(*base, "--at", "1000")
    assert "every job submitted by 1000 s has ended" in late.stderr
    assert "last one ended at 110 s" in late.stderr
    nothing = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--gpus-per-node", "1", "--at", "100.5")
    assert nothing.exit_code == 0  # "small" fits on one GPU
    only_huge = tmp_path / "huge.csv"
    only_huge.write_text(trace_csv([("huge", 0, 10, 64)]))
    failed = cli("sched", "explain", "--trace", str(only_huge), "--nodes", "1", "--at", "5")
    assert failed.exit_code == 1
    assert "none of the 1 job(s) in the trace fits on 1 node(s) of 8 GPUs" in failed.stderr


def test_a_start_on_the_starving_threshold_is_the_replays_own():
    """A fractional trace whose job sits on the starving threshold (a float running total used to tip it)."""
    text = "job_id,submit_time_s,duration_s,num_gpus,walltime_s\n"
    text += "R,0,1000000,7,1000000\nB,0.5,100000.3,8,100000.3\nHuge,0.5,1,1,10000000000\n"
    text += "S,175000.64999999997,2000000,1,2000000\n"
    jobs = parse_trace(text.splitlines())
    starts = {r.job_id: r.start_s for r in simulate(jobs, cluster_nodes(1, 8), POLICIES["default"]).records}
    assert starts["S"] == 175000.64999999997
    assert starts["B"] == 2175000.65
    found = explain_at(jobs, cluster_nodes(1, 8), POLICIES["default"], 175000.64999999997, ["S", "B"]).jobs
    assert [(j.job_id, j.state) for j in found] == [("S", "STARTING"), ("B", "PENDING")]


def test_cli_a_too_large_early_job_does_not_fail_the_rest(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("huge", 0, 10, 64), ("small", 100, 10, 1)]))
    result = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", "50", "--job", "small")
    assert result.exit_code == 0, result.stderr
    assert "can never run on this cluster and were skipped: huge" in result.stderr
    assert result.stdout.splitlines()[1].split()[:2] == ["small", "NOT_SUBMITTED"]


def _priority_trace(count: int = 70, seed: int = 11) -> list[TraceJob]:
    rng = random.Random(seed)
    jobs, t = [], 0.0
    for i in range(count):
        t += rng.expovariate(1 / 400)
        gpus = rng.choice([1, 2, 4, 8, 8, 16])
        duration = float(rng.randint(300, 20000))
        jobs.append(TraceJob(f"j{i}", round(t), duration, gpus, None, rng.choice([0, 0, 0, 5]), duration))
    return jobs


def test_with_preemption_the_explained_instant_matches_the_replays_segments():
    jobs = _priority_trace()
    cluster = cluster_nodes(3, 8)
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=600.0)
    result = simulate(jobs, cluster, config)
    assert result.preemptions > 0  # the trace exercises preemption
    records = result.records
    events = sorted({r.start_s for r in records} | {r.end_s for r in records} | {j.submit_s for j in jobs})
    between = {(a + b) / 2 for a, b in itertools.pairwise(events)}  # no pass runs there: none may preempt
    instants = sorted({r.start_s for r in records} | between)
    claimed_seen = stopping_seen = 0
    for at in instants:
        found = explain_at(jobs, cluster, config, at).jobs
        state = {j.job_id: j for j in found}
        now = {j.job_id for j in found if j.state == "STARTING" and j.start_s == at}
        assert now == {r.job_id for r in records if r.start_s == at}, at
        running = {j.job_id for j in found if j.state == "RUNNING"}
        assert running == {r.job_id for r in records if r.start_s < at < r.end_s}, at
        for claim in (j for j in found if j.state == "STARTING" and j.start_s > at):
            claimed_seen += 1
            assert any(r.job_id == claim.job_id and r.start_s == claim.start_s for r in records), (at, claim)
            assert claim.reason.endswith(("when they have stopped", "when it has stopped"))
        for job in (j for j in found if j.state == "RUNNING" and "preempted for job" in j.reason):
            stopping_seen += 1
            when = "stops at " if "stops at " in job.reason else "on its own first, at "
            stop = float(job.reason.split(when)[1].split(" s")[0])
            assert any(r.job_id == job.job_id and r.start_s < at < r.end_s <= stop for r in records)
        later = {r.job_id for r in records if r.submit_s <= at < r.start_s} - running
        later -= {j for j, s in state.items() if s.start_s is not None}
        assert {j.job_id for j in found if j.state == "PENDING"} == later, at
    assert claimed_seen > 0
    assert stopping_seen > 0


def test_a_requeued_jobs_wait_leaves_out_the_time_it_ran():
    jobs = [TraceJob("low", 0, 1000, 8, None, 0, 1000), TraceJob("vip", 100, 500, 8, None, 5, 500)]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=50.0)
    (low,) = explain_at(jobs, cluster_nodes(1, 8), config, 400.0, ["low"]).jobs
    assert low.state == "PENDING"  # ran 0-150 s (grace included), stopped for vip, queued again since 150 s
    assert low.waited_s == 400.0 - 150.0
    (vip,) = explain_at(jobs, cluster_nodes(1, 8), config, 120.0, ["vip"]).jobs
    assert vip.state == "STARTING"
    assert vip.start_s == 150.0
    assert vip.reason.startswith("preempting low: takes over n001 and starts at 150 s (in 30 s)")


def test_cli_preemption_flags(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus,priority\nlow,0,1000,8,0\nvip,100,500,8,5\n")
    base = ("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", "120")
    doc = cli(*base, "--preemption", "--grace", "50", "-o", "json").json()
    states = {item["id"]: (item["state"], item["start_s"]) for item in doc["items"]}
    assert states == {"low": ("RUNNING", 0.0), "vip": ("STARTING", 150.0)}
    easy = cli(*base, "--policy", "easy", "--preemption")
    assert easy.exit_code == 2
    assert "hint: give --policy default, or leave --preemption out." in easy.stderr
    alone = cli(*base, "--grace", "50")
    assert alone.exit_code == 2
    assert "--grace only applies with --preemption" in alone.stderr


def test_with_no_grace_period_a_chain_of_claims_at_one_instant_is_shown_whole():
    """Grace 0: the replay stops the victims and starts the claimers at the same second, then passes again."""
    jobs = [
        TraceJob(n, s, 1000.0, 8, None, p, 1000.0)
        for n, s, p in (("a", 0, 0), ("b", 0, 0), ("c", 100, 5), ("d", 100, 5))
    ]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=0.0)
    records = simulate(jobs, cluster_nodes(2, 8), config).records
    assert sorted(r.job_id for r in records if r.start_s == 100.0) == ["c", "d"]
    found = {j.job_id: j.state for j in explain_at(jobs, cluster_nodes(2, 8), config, 100.0).jobs}
    assert found == {"a": "PENDING", "b": "PENDING", "c": "STARTING", "d": "STARTING"}
