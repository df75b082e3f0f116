"""Trace rows that used to replay as a different job: extra fields, a column named twice, Unicode digits, a quote
never closed, and header names in another case (read case-insensitively)."""

from __future__ import annotations

import pytest

from factoryctl.errors import ExitCode, UsageError
from factoryctl.scheduler.trace import parse_trace

HEADER = "job_id,submit_time_s,duration_s,num_gpus"


def refused(lines: list[str]) -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse_trace(lines, source="t.csv")
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.hint
    return caught.value


def test_a_row_with_more_fields_than_the_header_is_refused_at_its_line(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f"{HEADER}\na,0,3600,8\nb,0,1,5,8\n", encoding="utf-8")
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo", "--schedule-out", "-")
    assert r.exit_code == 2
    assert "t.csv:3: the row has 5 fields but the header names 4 columns." in r.stderr
    assert "hint: remove the extra fields, or quote a field that holds a comma" in r.stderr
    assert "b,fifo" not in r.stdout  # it was replayed as a 1 s job on 5 GPUs


def test_trailing_empty_fields_are_not_extra_fields():
    (job,) = parse_trace([HEADER, "a,0,10,2,,"], source="t.csv")
    assert (job.job_id, job.num_gpus) == ("a", 2)


@pytest.mark.parametrize("header", [HEADER + ",job_id", HEADER + ",team,Team", "Num_GPUs," + HEADER])
def test_a_header_naming_a_column_twice_is_refused(header):
    error = refused(["", header, "a,0,10,1,b"])
    assert error.message.startswith("t.csv:2: the header names column ")
    assert error.message.endswith(" twice")


@pytest.mark.parametrize("digits", ["８", "٨", "8\u0660"])
def test_only_ascii_digits_are_numbers(digits):
    error = refused([HEADER, "a,0,10,1", f"b,0,10,{digits}"])
    assert error.message == f"t.csv:3: num_gpus is not a number: {digits!r}"
    assert "ASCII" in (error.hint or "")


@pytest.mark.parametrize(
    ("rows", "line"),
    [
        (["a,0,10,1", '"b,0,10,1', "c,0,10,1"], 3),  # swallows the rest of the file
        (["a,0,10,1", "", 'b,0,"10,1'], 4),
        (['a,0,10,"1'], 2),  # the last field, which would otherwise parse as 1
        (['a,0,10,"1\n'], 2),
    ],
)
def test_a_quote_never_closed_is_named_as_such(rows, line):
    error = refused([HEADER, *rows])
    assert error.message.startswith(f"t.csv:{line}: a quote opened on this line is never closed")
    assert "close the quote" in (error.hint or "")


def test_quoted_fields_that_close_still_parse():
    jobs = parse_trace([HEADER, '"a,1",0,10,1', '"b\n', 'c",0,"20",2'], source="t.csv")
    assert [(job.job_id, job.duration_s) for job in jobs] == [("a,1", 10.0), ("b\nc", 20.0)]


def test_header_names_are_read_case_insensitively():
    (job,) = parse_trace(["Job_ID,SUBMIT_TIME_S,Duration_s,NUM_GPUS,Priority", "a,5,10,2,3"], source="t.csv")
    assert (job.job_id, job.submit_s, job.duration_s, job.num_gpus, job.priority) == ("a", 5.0, 10.0, 2, 3)


def test_the_columns_the_replay_does_not_read_are_named():
    ignored: list[str] = []
    parse_trace([HEADER + ",Deferrable,max_price,,walltime_s", "a,0,10,1,true,80,,20"], "t.csv", ignored)
    assert ignored == ["Deferrable", "max_price", "column 7 (no name)"]  # as the file writes them ("deferrable")


def test_columns_the_replay_ignores_are_named_once_on_stderr(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text(f"{HEADER},deferrable,max_price,deadline_s,labels\na,0,10,1,true,80,100,pool=x\n", "utf-8")
    for command in (["simulate", "--policy", "fifo,default"], ["explain", "--at", "5"]):
        r = cli("sched", *command, "--trace", str(trace), "--nodes", "1")
        assert r.exit_code == 0, r.stderr
        note = "ignoring column(s) deferrable, max_price, deadline_s, labels: the replay does not model them"
        assert r.stderr.count(note) == 1, r.stderr
        quiet = cli("-q", "sched", *command, "--trace", str(trace), "--nodes", "1")
        assert "ignoring" not in quiet.stderr
    plain = tmp_path / "plain.csv"
    plain.write_text(f"{HEADER}\na,0,10,1\n", "utf-8")
    assert "ignoring" not in cli("sched", "simulate", "--trace", str(plain), "--nodes", "1").stderr


def test_times_in_the_tables_are_whole_seconds(cli, tmp_path):
    """One job waits 5 s, one 5.5 s, one 9.5 s: the table showed 5, 5.5 and 63.7 side by side."""
    trace = tmp_path / "t.csv"
    trace.write_text(f"{HEADER}\na,0,5,8\nb,0,5.5,8\nc,1,63.7,8\n", "utf-8")
    table = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo", "-o", "wide").stdout
    cells = table.splitlines()[1].split()
    assert cells[2:7] == ["30", "5", "5", "9", "10"]  # avg JCT 29.6, queue avg 4.83, p50 5, p99 9.4, max 9.5
    assert cells[10] == "74"  # makespan 74.2
    explained = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", "64.7", "-o", "wide").stdout
    assert explained.splitlines()[1].split()[3:6] == ["1", "10", "10"]  # submit 1, waited 9.5, start 10.5
    exact = cli("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", "64.7", "-o", "json").json()
    assert exact["items"][0]["waited_s"] == 9.5
