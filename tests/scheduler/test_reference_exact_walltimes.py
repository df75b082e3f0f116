"""The textbook references plan with exact durations; `default` plans with the walltimes users asked for.

Issue 6 defines fifo, sjf and easy "using exact durations as walltimes" so that everyone's reference figures agree.
A trace with a `walltime_s` column used to give the references those walltimes: SJF then ordered by the users'
over-estimates and EASY's reservations were placed by them, so the references were not the textbook ones and the
quality goal compared `default` with weaker references than it should.
"""

from __future__ import annotations

from helpers import nodes

from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.simulate import simulate
from factoryctl.scheduler.trace import parse_trace

#: On one 8-GPU node: b asks for 40 s and runs 40 (cut at its walltime), c asks for 5,000 s and runs 10.
TRACE = [
    "job_id,submit_time_s,duration_s,num_gpus,walltime_s",
    "a,0,100,8,1000",
    "b,0,50,8,40",
    "c,10,10,8,5000",
    "d,10,300,8,300",
]


def starts(policy: str) -> dict[str, float]:
    result = simulate(parse_trace(TRACE), nodes(1), POLICIES[policy])
    return {record.job_id: record.start_s for record in result.records}


def test_sjf_orders_by_how_long_jobs_really_run_not_by_their_walltimes():
    # b runs 40 s, then c (10 s, though it asked for 5,000), then a (100 s), then d: shortest real run first.
    assert starts("sjf") == {"b": 0.0, "c": 40.0, "a": 50.0, "d": 150.0}


def test_easy_backfills_on_exact_durations():
    trace = [
        "job_id,submit_time_s,duration_s,num_gpus,walltime_s",
        "long,0,100,8,100",
        "gang,1,50,16,50",
        "short,2,90,8,3600",  # asks for an hour, runs 90 s: it ends before the gang's reserved start at 100 s
    ]
    result = simulate(parse_trace(trace), nodes(2), POLICIES["easy"])
    assert {r.job_id: r.start_s for r in result.records} == {"long": 0.0, "gang": 100.0, "short": 2.0}


def test_default_plans_with_the_walltimes_asked_for():
    # Aging order weighs the walltime asked for: c's 5,000 s put it last, though it runs 10 s.
    assert starts("default") == {"b": 0.0, "d": 40.0, "a": 340.0, "c": 440.0}


def test_the_reference_policies_and_only_they_are_exact():
    assert {name for name, config in POLICIES.items() if config.exact_walltimes} == {"fifo", "sjf", "easy"}
