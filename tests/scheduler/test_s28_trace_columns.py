"""Session 28: a trace and each policy's schedule are held in columns (`TraceJobs`, `ScheduleRecords`) so a trace of
millions of jobs fits in memory. What the replay relies on: every column round-trips exactly, the plain replay lets
go of a job once it starts, and the schedule check and the metrics read the columns as they read records."""

from __future__ import annotations

import pytest

from factoryctl.scheduler.metrics import job_delays, summarize
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.schedule_check import check_schedule
from factoryctl.scheduler.schedule_records import JobRecord, ScheduleRecords
from factoryctl.scheduler.simulate import SimulationResult, cluster_nodes, drive, new_replay, simulate
from factoryctl.scheduler.trace import TraceJob, parse_trace
from factoryctl.scheduler.tracejobs import TraceJobs, arrival_order

HEADER = "job_id,submit_time_s,duration_s,num_gpus,num_nodes,gpus_per_node,priority,walltime_s"
#: Every column at its edges: no shape and a derived one, priorities at both limits, a walltime shorter and longer
#: than the run, decimals that are not exact in binary, the largest time and count a trace may give.
ROWS = [
    "a,0,10,1,,,,",
    "b,0.1,3600.7,16,2,,-1000000,",
    "c,1e11,0.3,1000000,,1000,1000000,7.25",
    '"d,1",5,1e11,8,1,8,3,99999999999',
    "e,-0,0,2,,2,0,1",
]


def test_a_parsed_trace_is_held_in_columns_and_gives_back_every_field():
    jobs = parse_trace([HEADER, *ROWS], source="t.csv")
    assert isinstance(jobs, TraceJobs)
    expected = [
        TraceJob("a", 0.0, 10.0, 1, None, 0, 10.0),
        TraceJob("b", 0.1, 3600.7, 16, 8, -1_000_000, 3600.7),
        TraceJob("c", 1e11, 0.3, 1_000_000, 1000, 1_000_000, 7.25),
        TraceJob("d,1", 5.0, 1e11, 8, 8, 3, 99999999999.0),
        TraceJob("e", -0.0, 0.0, 2, 2, 0, 1.0),
    ]
    assert list(jobs) == expected
    assert jobs == expected  # compared as the list it was
    assert [jobs[i] for i in range(-5, 5)] == expected + expected
    assert jobs[1:3] == expected[1:3]
    assert [str(job.submit_s) for job in jobs][-1] == "-0.0"  # the sign survives the array
    with pytest.raises(IndexError):
        jobs[5]


def test_a_copy_of_hand_built_jobs_equals_them():
    built = [TraceJob("x", 3.0, 2.0, 4), TraceJob("y", 1.0, 2.0, 4, 2, 5, 9.5)]
    assert list(TraceJobs(built)) == built


def test_the_arrival_order_is_by_submit_time_with_ties_in_file_order():
    jobs = parse_trace([HEADER, "a,5,1,1,,,,", "b,1,1,1,,,,", "c,5,1,1,,,,", "d,0,1,1,,,,"])
    order, submits = arrival_order(jobs)
    assert [jobs[i].job_id for i in order] == ["d", "b", "a", "c"]
    assert list(submits) == [5.0, 1.0, 5.0, 0.0]
    assert list(arrival_order(jobs[1:2])[0]) == [0]


RECORDS = (
    JobRecord("a", "fifo", 0.0, 0.0, 10.5, 16, (("n2", 8), ("n1", 8))),
    JobRecord("b", "fifo", 1.0, 10.5, 20.0, 3, (("n1", 3),)),
    JobRecord("a", "fifo", 0.0, 30.0, 31.0, 16, (("n1", 8), ("n3", 8))),
)


def test_schedule_records_give_back_every_field_and_allocation_in_order():
    columns = ScheduleRecords.of(RECORDS, ["n1", "n2", "n3"])
    assert list(columns) == list(RECORDS)
    assert columns == RECORDS
    assert columns[-1].allocation_text() == "n1:8 n3:8"
    assert columns.segmented == {"a"}  # a job with two records is a preempted one


def test_cutting_a_record_ends_it_and_marks_its_job_as_run_in_segments():
    columns = ScheduleRecords("default", ["n1"])
    columns.append("a", 0.0, (0.0, 100.0), 8, ([0], [8]))
    columns.cut(0, 40.0)
    assert columns[0] == JobRecord("a", "default", 0.0, 0.0, 40.0, 8, (("n1", 8),))
    assert columns.segmented == {"a"}


def test_the_metrics_of_columns_are_those_of_the_records_they_hold():
    as_tuple = SimulationResult("fifo", RECORDS, (), (0.001, 0.002), 24)
    as_columns = SimulationResult("fifo", ScheduleRecords.of(RECORDS), (), (0.001, 0.002), 24)
    assert summarize(as_columns) == summarize(as_tuple)
    assert job_delays(RECORDS) == [(16, 31.0, 19.5), (3, 19.0, 9.5)]  # a's wait: 0 before, 19.5 between its runs


def test_the_schedule_check_reads_columns_and_still_finds_each_broken_rule():
    trace = [TraceJob("a", 0.0, 11.5, 16), TraceJob("b", 1.0, 9.5, 3)]
    capacity = {"n1": 8, "n2": 8, "n3": 8}
    problems = check_schedule(RECORDS, capacity, trace)
    assert problems == []  # a's two runs add up to 11.5 s and never overlap; b starts when a's first run ends
    over = (*RECORDS, JobRecord("b", "fifo", 1.0, 30.5, 31.0, 3, (("n1", 3),)))
    assert check_schedule(over, capacity, trace) == [
        "n1 over-committed at t=30.5s (11 GPUs used)",
        "b ran 10s in all but its run time is 9.5s",
    ]
    partial = (JobRecord("b", "fifo", 1.0, 0.0, 9.5, 3, (("n1", 2), ("n1", 1))),)
    assert check_schedule(partial, capacity, trace) == ["b starts before it was submitted", "b lists a node twice"]
    assert check_schedule((JobRecord("z", "fifo", 0.0, 0.0, 1.0, 1, (("n1", 1),)),), capacity, trace) == [
        "z is not in the trace"
    ]


def test_a_replay_keeps_its_schedule_in_columns_and_lets_go_of_started_jobs():
    trace = parse_trace([HEADER, *(f"j{i},{i},100,8,,,," for i in range(6))])
    replay = new_replay(cluster_nodes(2, 8), POLICIES["fifo"])
    drive(replay, trace, until=50.0)  # two jobs run, four wait
    assert isinstance(replay.records, ScheduleRecords)
    assert sorted(replay.by_id) == ["j2", "j3", "j4", "j5"]  # only the queued: a started job is in its record
    result = simulate(trace, cluster_nodes(2, 8), POLICIES["fifo"])
    starts = [0.0, 1.0, 100.0, 101.0, 200.0, 201.0]
    assert [(r.job_id, r.start_s) for r in result.records] == [(f"j{i}", start) for i, start in enumerate(starts)]
