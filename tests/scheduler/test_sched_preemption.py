"""Preemption in the trace replay: each rule on a tiny trace, the shared victim choice, and the CLI options."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from helpers import nodes, pending, running, trace_csv
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schedule_validator import validate

from factoryctl.scheduler.core import plan
from factoryctl.scheduler.decide import _build, schedule
from factoryctl.scheduler.metrics import summarize
from factoryctl.scheduler.policy import POLICIES, SchedulerConfig
from factoryctl.scheduler.simulate import SimulationResult, cluster_nodes, simulate
from factoryctl.scheduler.trace import TraceJob

PREEMPTIVE = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=30.0)


def job(job_id: str, submit: float, duration: float, gpus: int = 8, priority: int = 0) -> TraceJob:
    return TraceJob(job_id, submit, duration, gpus, None, priority, duration)


def segments(result: SimulationResult) -> dict[str, list[tuple[float, float, str]]]:
    out: dict[str, list[tuple[float, float, str]]] = {}
    for r in sorted(result.records, key=lambda r: r.start_s):
        out.setdefault(r.job_id, []).append((r.start_s, r.end_s, r.allocation_text()))
    return out


def test_victim_keeps_its_gpus_through_the_grace_then_the_high_priority_job_starts_on_them():
    trace = [job("low", 0, 1000), job("vip", 100, 50, priority=10)]
    result = simulate(trace, cluster_nodes(1, 8), PREEMPTIVE)
    runs = segments(result)
    # low checkpoints from 100 to 130 on its GPUs, vip runs on them from 130, low resumes its last 870 s after.
    assert runs["low"] == [(0, 130, "n001:8"), (180, 1050, "n001:8")]
    assert runs["vip"] == [(130, 180, "n001:8")]
    assert (result.preemptions, result.preempted_gpu_s) == (1, 8 * 30.0)


def test_requeued_job_keeps_its_submit_time_and_priority_and_loses_no_work():
    trace = [job("low", 0, 1000, priority=1), job("vip", 100, 50, priority=10), job("later", 120, 2000, priority=1)]
    result = simulate(trace, cluster_nodes(1, 8), PREEMPTIVE)
    runs = segments(result)
    assert sum(end - start for start, end, _ in runs["low"]) == 1000
    # low (submitted at 0, walltime left 870 s) is ahead of later in aging order despite its requeue at 130.
    assert runs["low"][1] == (180, 1050, "n001:8")
    assert runs["later"] == [(1050, 3050, "n001:8")]
    item = summarize(result, preemption=True)
    assert item["jobs"] == 3
    # JCT is submit to the final end; queueing is all the time not running (180 - 130 for low).
    assert item["avg_jct_s"] == pytest.approx((1050 + (180 - 100) + (3050 - 120)) / 3)
    assert item["avg_queue_s"] == pytest.approx((50 + 30 + 930) / 3)
    assert (item["preemptions"], item["preempted_gpu_s"]) == (1, 240.0)


def test_equal_priorities_never_preempt():
    trace = [job("a", 0, 1000, priority=5), job("b", 100, 50, priority=5)]
    result = simulate(trace, cluster_nodes(1, 8), PREEMPTIVE)
    assert segments(result)["b"] == [(1000, 1050, "n001:8")]
    assert result.preemptions == 0


def test_preemption_is_off_by_default():
    assert SchedulerConfig().preemption is False
    assert POLICIES["default"].preemption is False
    trace = [job("low", 0, 1000), job("vip", 100, 50, priority=10)]
    result = simulate(trace, cluster_nodes(1, 8), POLICIES["default"])
    assert segments(result)["vip"] == [(1000, 1050, "n001:8")]
    assert "preemptions" not in summarize(result)


def test_victim_ending_during_its_grace_just_ends_and_the_claim_starts_then():
    trace = [job("low", 0, 120), job("vip", 100, 50, priority=10)]
    result = simulate(trace, cluster_nodes(1, 8), PREEMPTIVE)
    runs = segments(result)
    assert runs["low"] == [(0, 120, "n001:8")]
    assert runs["vip"] == [(120, 170, "n001:8")]  # its only victim is gone: no wait for the grace period's end
    assert result.preemptions == 0


def test_backfill_cannot_take_the_gpus_a_preempting_job_claimed():
    # vip needs both nodes: n002 is free at once, n001 after low's grace. A short job arriving in the grace
    # period would fit on n002 and end before the grace is over, but n002 is vip's.
    trace = [job("low", 0, 1000), job("vip", 100, 50, gpus=16, priority=10), job("short", 110, 5)]
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    runs = segments(result)
    assert runs["vip"] == [(130, 180, "n001:8 n002:8")]
    assert runs["short"][0][0] >= 180


def test_no_job_is_preempted_twice_in_one_grace_period():
    trace = [job("low", 0, 1000), job("vip1", 100, 50, priority=10), job("vip2", 110, 50, priority=10)]
    result = simulate(trace, cluster_nodes(1, 8), PREEMPTIVE)
    runs = segments(result)
    assert len(runs["low"]) == 2
    assert runs["vip1"] == [(130, 180, "n001:8")]
    assert runs["vip2"] == [(180, 230, "n001:8")]  # equal to vip1: it waits, low is not stopped again
    assert result.preemptions == 1


def test_a_job_in_its_grace_period_is_not_chosen_again():
    trace = [job("low1", 0, 1000), job("low2", 1, 1000), job("vip1", 100, 50, priority=10)]
    trace.append(job("vip2", 110, 50, priority=10))
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    runs = segments(result)
    # vip1 stops low2 (the youngest); vip2, arriving during low2's grace, stops low1 instead of low2 again.
    assert runs["low2"][0][:2] == (1, 130)
    assert runs["low1"][0][:2] == (0, 140)
    assert (len(runs["low1"]), len(runs["low2"]), result.preemptions) == (2, 2, 2)


def test_only_the_victims_needed_are_stopped_and_other_nodes_keep_running():
    trace = [job("a", 0, 1000), job("b", 1, 1000), job("vip", 100, 8, priority=10)]
    result = simulate(trace, cluster_nodes(2, 8), PREEMPTIVE)
    runs = segments(result)
    # b is the youngest lowest-priority job: it is stopped, a keeps running.
    assert len(runs["a"]) == 1
    assert len(runs["b"]) == 2
    assert result.preemptions == 1


def test_zero_grace_stops_at_once():
    config = dataclasses.replace(PREEMPTIVE, grace_s=0.0)
    result = simulate([job("low", 0, 1000), job("vip", 100, 50, priority=10)], cluster_nodes(1, 8), config)
    assert segments(result)["vip"] == [(100, 150, "n001:8")]
    assert (result.preemptions, result.preempted_gpu_s) == (1, 0.0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=st.data())
def test_first_short_job_is_the_first_waiting_for_resources(state):
    """`PassOutcome.first_short` (used by the replay) names the job `schedule()`'s reasons put first."""
    cluster = nodes(state.draw(st.integers(1, 3)))
    jobs = []
    for i in range(state.draw(st.integers(0, 3))):
        jobs.append(running(f"r{i}", [(f"n{i % len(cluster)}", state.draw(st.integers(1, 2)))], 0, 600))
    for i in range(state.draw(st.integers(1, 8))):
        jobs.append(pending(f"p{i}", state.draw(st.sampled_from([1, 4, 8, 16, 64])), float(i), priority=i % 2))
    config = POLICIES[state.draw(st.sampled_from(sorted(POLICIES)))]
    fm, run, queue = _build(cluster, jobs, 100.0, config)
    explained = plan(fm, queue, run, 100.0, config, explain=True)
    first = next((w.job.id for w in explained.waiting if w.why in ("resources", "reserved")), None)
    fm, run, queue = _build(cluster, jobs, 100.0, config)
    quick = plan(fm, queue, run, 100.0, config)
    assert (quick.first_short.id if quick.first_short else None) == first
    assert (explained.first_short.id if explained.first_short else None) == first


def test_schedule_and_replay_stop_the_same_victims():
    """At the same instant, `schedule()` proposes exactly the jobs the replay stops."""
    trace = [job("old", 0, 1000), job("young", 10, 1000), job("mid", 5, 1000, priority=3)]
    trace.append(job("vip", 100, 50, gpus=16, priority=5))
    result = simulate(trace, cluster_nodes(3, 8), PREEMPTIVE)
    stopped = {job_id for job_id, runs in segments(result).items() if len(runs) > 1}
    cluster = nodes(3)
    live = [
        running("old", [("n0", 8)], 0, 1000),
        running("young", [("n2", 8)], 10, 1000),
        running("mid", [("n1", 8)], 5, 1000, priority=3),
        pending("vip", 16, 100, priority=5, walltime_s=50),
    ]
    proposed = {p.job_id for p in schedule(cluster, live, 100, PREEMPTIVE).preemptions}
    assert stopped == proposed == {"old", "young"}


@st.composite
def priority_trace(draw):
    jobs = []
    for i in range(draw(st.integers(1, 20))):
        gpus = draw(st.sampled_from([1, 2, 4, 8, 8, 16]))
        duration = float(draw(st.integers(0, 3000)))
        walltime = duration * draw(st.sampled_from([1.0, 1.0, 0.5, 3.0]))  # estimates exact, short (cut), long
        submit = float(draw(st.integers(0, 4000)))
        jobs.append(TraceJob(f"j{i}", submit, duration, gpus, None, draw(st.integers(0, 2)), walltime))
    return jobs


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=priority_trace(), count=st.integers(1, 3), grace=st.sampled_from([0.0, 30.0, 300.0]))
def test_every_job_finishes_and_no_work_is_lost_or_made_up(trace, count, grace):
    config = dataclasses.replace(PREEMPTIVE, grace_s=grace)
    result = simulate(trace, cluster_nodes(count, 8), config)
    rejected = {r.job_id for r in result.rejected}
    by_id = {j.job_id: j for j in trace}
    runs = segments(result)
    assert set(runs) | rejected == set(by_id)
    for job_id, parts in runs.items():
        assert parts[0][0] >= by_id[job_id].submit_s
        for (_, end, _), (start, _, _) in itertools.pairwise(parts):
            assert start >= end
    done = sum(by_id[r.job_id].num_gpus * (r.end_s - r.start_s) for r in result.records)
    owed = sum(j.num_gpus * j.runtime_s for j in trace if j.job_id not in rejected)
    assert done == pytest.approx(owed, abs=1e-6)
    assert result.preemptions == len(result.records) - len(runs)
    stopped_gpus = sum(by_id[job_id].num_gpus * (len(parts) - 1) for job_id, parts in runs.items())
    assert result.preempted_gpu_s == pytest.approx(stopped_gpus * grace)


PRIORITY_TRACE = trace_csv(
    [("low1", 0, 5000, 8), ("low2", 0, 5000, 8), ("vip", 600, 1200, 16), ("small", 700, 100, 4)],
    ",priority",
    [",0", ",0", ",10", ",0"],
)


def test_cli_preemption_reports_and_writes_segments(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(PRIORITY_TRACE)
    out = tmp_path / "schedule.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "easy,default",
            "--preemption", "--grace", "60", "-o", "json", "--schedule-out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    items = {item["policy"]: item for item in r.json()["items"]}
    assert (items["default"]["preemptions"], items["default"]["preempted_gpu_s"]) == (2, 2 * 8 * 60.0)
    assert (items["easy"]["preemptions"], items["easy"]["preempted_gpu_s"]) == (0, 0.0)  # textbook: untouched
    schedule = out.read_text()
    assert validate(schedule, PRIORITY_TRACE, nodes=2, gpus_per_node=8) == []
    rows = [line.split(",") for line in schedule.splitlines()[1:] if ",default," in line]
    assert [row[3:5] for row in rows if row[0] == "low1"] == [["0", "660"], ["1860", "6200"]]
    assert [row[3:6] for row in rows if row[0] == "vip"] == [["660", "1860", "n001:8 n002:8"]]


def test_cli_without_preemption_is_unchanged_and_textbook_policies_ignore_it(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(PRIORITY_TRACE)
    plain, with_flag = tmp_path / "plain.csv", tmp_path / "flag.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "-o", "json", "--schedule-out", str(plain))
    assert r.exit_code == 0
    assert all("preemptions" not in item for item in r.json()["items"])
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--preemption", "-o", "json",
            "--schedule-out", str(with_flag))  # fmt: skip
    assert r.exit_code == 0
    textbook = [line for line in plain.read_text().splitlines() if ",default," not in line]
    assert textbook == [line for line in with_flag.read_text().splitlines() if ",default," not in line]
    default = {item["policy"]: item for item in r.json()["items"]}["default"]
    assert default["preempted_gpu_s"] == 2 * 8 * 300.0  # the default grace


def test_equal_priority_trace_is_identical_with_preemption(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([(f"j{i}", i * 50, 400 + 37 * i, [1, 4, 8, 16][i % 4]) for i in range(30)]))
    outs = []
    for extra in ((), ("--preemption",)):
        out = tmp_path / f"s{len(extra)}.csv"
        assert cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "default",
                   "--schedule-out", str(out), *extra).exit_code == 0  # fmt: skip
        outs.append(out.read_text())
    assert outs[0] == outs[1]


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        (("--preemption", "--grace", "-5"), "--grace must not be negative, not -5.", "e.g. --grace 300"),
        (("--preemption", "--grace", "soon"), "--grace must be a number of seconds, not 'soon'.", "--grace 300"),
        (("--preemption", "--grace", "nan"), "--grace must be a number of seconds, not 'nan'.", "--grace 300"),
        (("--preemption", "--grace", "1e9"), "--grace must be at most 86,400 seconds (a day)", "--grace 300"),
        (("--grace", "60"), "--grace only applies with --preemption.", "add --preemption"),
        (("--preemption", "--policy", "fifo,easy"), "applies to the default policy only", "add default to --policy"),
    ],
)
def test_bad_preemption_options_are_usage_errors(cli, tmp_path, args, message, hint):
    trace = tmp_path / "trace.csv"
    trace.write_text(PRIORITY_TRACE)
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", *args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert "\nhint: " in r.stderr
    assert hint in r.stderr
    assert "Traceback" not in r.stderr


def test_free_map_copy_is_independent():
    fm, _, _ = _build(nodes(2), [running("r", [("n0", 3)], 0, 100)], 10.0, PREEMPTIVE)
    other = fm.copy()
    other.take(1, 8)
    other.give(0, 3)
    assert (fm.free, other.free) == ([5, 8], [8, 0])
    assert fm.fits(1, 8)
    assert not fm.fits(2, 8)
    assert other.fits(1, 8)
    assert not other.fits(1, 1, allowed=frozenset({1}))


def test_a_claim_starts_when_its_last_victim_ends_on_its_own():
    """It used to wait out the grace period on GPUs already free (the GPUs sat idle from 100 to 301 s)."""
    trace = [job("low", 0, 100, gpus=8), job("vip", 1, 50, priority=10)]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=300.0)
    result = simulate(trace, cluster_nodes(1, 8), config)
    assert result.preemptions == 0
    assert {r.job_id: r.start_s for r in result.records} == {"low": 0, "vip": 100}


def test_a_victim_ending_in_the_grace_period_spares_another_stop():
    """Three nodes; vip needs two. The youngest victim ends on its own in the grace period, the other is stopped."""
    trace = [job("B", 0, 10000), job("C", 10, 10000), job("A", 20, 400), job("vip", 300, 50, gpus=16, priority=5)]
    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=300.0)
    result = simulate(trace, cluster_nodes(3, 8), config)
    runs = segments(result)
    assert result.preemptions == 1
    assert runs["A"] == [(20, 420, runs["A"][0][2])]  # ran to its end
    assert len(runs["C"]) == 2  # stopped at 600 s and requeued
    assert runs["vip"][0][0] == 600
    assert runs["B"] == [(0, 10000, runs["B"][0][2])]
