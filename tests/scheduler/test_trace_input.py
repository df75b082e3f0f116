"""Bad trace input and bad `sched simulate` options: a sentence naming file:line and a hint, never a crash."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import trace_csv
from nonroot import as_non_root, give_to_non_root, needs_non_root, non_root_directory

from factoryctl.errors import ExitCode, FactoryError, UsageError
from factoryctl.scheduler.trace import MAX_SECONDS, parse_trace
from factoryctl.textfile import decode_utf8

HEADER = "job_id,submit_time_s,duration_s,num_gpus"


def parse(*rows: str, extra: str = "") -> list:
    return parse_trace([HEADER + extra, *rows], source="t.csv")


def usage_error(*rows: str, extra: str = "") -> UsageError:
    with pytest.raises(UsageError) as caught:
        parse(*rows, extra=extra)
    assert caught.value.exit_code == ExitCode.USAGE
    return caught.value


def write(tmp_path: Path, content: str | bytes, name: str = "t.csv") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_sentence_and_hint(r, code: int = 2) -> None:
    assert r.exit_code == code, r.stderr
    assert r.stderr.startswith("factoryctl: ")
    assert "\nhint: " in r.stderr
    assert "Traceback" not in r.stderr
    assert "unexpected error" not in r.stderr
    assert "Usage:" not in r.stderr


# -- 1, 2: num_nodes must agree with num_gpus and gpus_per_node -------------------------------------------------


def test_fewer_gpus_than_nodes_is_a_usage_error_not_a_crash(cli, tmp_path):
    error = usage_error("a,0,10,2,4", extra=",num_nodes")
    assert error.message.startswith("t.csv:2: ")
    assert "num_gpus 2 is fewer than num_nodes 4" in error.message
    assert error.hint
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, f"{HEADER},num_nodes\na,0,10,2,4\n")), "--nodes", "2")
    assert_sentence_and_hint(r)
    assert "t.csv:2: num_gpus 2 is fewer than num_nodes 4" in r.stderr


@pytest.mark.parametrize(
    ("row", "extra", "message"),
    [
        ("a,0,10,12,5", ",num_nodes", "num_gpus 12 does not split evenly over num_nodes 5"),
        ("a,0,10,16,4,8", ",num_nodes,gpus_per_node", "num_nodes 4 x gpus_per_node 8 is 32, not num_gpus 16"),
        ("a,0,10,16,1,8", ",num_nodes,gpus_per_node", "num_nodes 1 x gpus_per_node 8 is 8, not num_gpus 16"),
        ("a,0,10,8,0", ",num_nodes", "num_nodes must be a whole number of at least 1, not 0"),
        ("a,0,10,8,1.5", ",num_nodes", "num_nodes must be a whole number of at least 1, not 1.5"),
    ],
)
def test_inconsistent_num_nodes_is_a_usage_error_naming_the_values(row, extra, message):
    error = usage_error(row, extra=extra)
    assert error.message.startswith("t.csv:2: ")
    assert message in error.message


@pytest.mark.parametrize(
    ("cells", "extra", "gpus_per_node"),
    [
        ("12,2", ",num_nodes", 6),
        ("12,3", ",num_nodes", 4),
        ("16,1", ",num_nodes", 16),  # the trace says one node: not the scheduler's 2 x 8
        ("8,1", ",num_nodes", 8),
        ("16,2,8", ",num_nodes,gpus_per_node", 8),
        ("16,,4", ",num_nodes,gpus_per_node", 4),
        ("16,,", ",num_nodes,gpus_per_node", None),
        ("16", "", None),
    ],
)
def test_consistent_num_nodes_sets_gpus_per_node(cells, extra, gpus_per_node):
    (job,) = parse(f"a,0,10,{cells}", extra=extra)
    assert job.gpus_per_node == gpus_per_node


def test_num_nodes_shapes_the_gang_in_the_replay(cli, tmp_path):
    trace = write(tmp_path, f"{HEADER},num_nodes\nthree,0,10,12,3\ntwo,0,10,12,2\n")
    out = tmp_path / "s.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "4", "--policy", "fifo", "--schedule-out", str(out))
    assert r.exit_code == 0, r.stderr
    allocations = {line.split(",")[0]: line.split(",")[5].split() for line in out.read_text().splitlines()[1:]}
    assert [part.split(":")[1] for part in allocations["three"]] == ["4", "4", "4"]
    assert [part.split(":")[1] for part in allocations["two"]] == ["6", "6"]


# -- 3: encodings ---------------------------------------------------------------------------------------------


def test_a_byte_order_mark_is_not_part_of_the_first_column(cli, tmp_path):
    data = ("\ufeff" + HEADER + "\na,0,10,1\n").encode("utf-8")
    (job,) = parse_trace(decode_utf8(data, "t.csv", "trace").splitlines(), source="t.csv")
    assert job.job_id == "a"
    (job,) = parse_trace(["\ufeff" + HEADER, "a,0,10,1"], source="t.csv")  # a caller that kept the BOM
    assert job.job_id == "a"
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, data)), "--nodes", "1", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["jobs"] == 1


def test_bytes_that_are_not_utf8_are_a_usage_error_naming_the_line(cli, tmp_path):
    data = f"{HEADER}\na,0,10,1\nb\xe9,0,10,1\n".encode("latin-1")
    with pytest.raises(UsageError, match=r"^t\.csv:3: the trace is not UTF-8 text") as caught:
        decode_utf8(data, "t.csv", "trace")
    assert caught.value.hint
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, data)), "--nodes", "1")
    assert_sentence_and_hint(r)
    assert "t.csv:3: the trace is not UTF-8 text" in r.stderr


# -- 4: empty and header-only traces --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the trace is empty"),
        ("\n\n", "the trace is empty"),
        (HEADER + "\n", "the trace has no jobs"),
        (HEADER + "\n\n\n", "the trace has no jobs"),
    ],
)
def test_empty_and_header_only_traces_exit_2_with_a_hint(cli, tmp_path, content, message):
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, content)), "--nodes", "1")
    assert_sentence_and_hint(r)
    assert f"t.csv: {message}" in r.stderr
    assert r.stdout == ""


# -- 5, 7: negative and absurd times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,-1,10,1", "t.csv:2: submit_time_s is -1 but must not be negative"),
        ("a,0,-5,1", "t.csv:2: duration_s is -5 but must not be negative"),
        ("a,0,-0.5,1", "t.csv:2: duration_s is -0.5 but must not be negative"),
    ],
)
def test_negative_times_name_the_column_value_and_line(row, message):
    assert usage_error(row).message == message


@pytest.mark.parametrize(
    ("row", "extra", "column"),
    [
        ("a,1e308,10,1", "", "submit_time_s"),
        ("a,0,1e308,1", "", "duration_s"),
        ("a,0,1.5e11,1", "", "duration_s"),
        ("a,0,10,1,1e300", ",walltime_s", "walltime_s"),
    ],
)
def test_absurd_times_are_bounded(row, extra, column):
    error = usage_error(row, extra=extra)
    assert error.message.startswith(f"t.csv:2: {column} is ")
    assert f"{MAX_SECONDS:g} seconds" in error.message
    assert error.hint


def test_the_bound_itself_is_allowed():
    (job,) = parse(f"a,{MAX_SECONDS:.0f},{MAX_SECONDS:.0f},1,{MAX_SECONDS:.0f}", extra=",walltime_s")
    assert job.submit_s == job.duration_s == job.walltime_s == MAX_SECONDS


def test_huge_times_exit_2_instead_of_a_simulator_bug(cli, tmp_path):
    trace = write(tmp_path, f"{HEADER}\na,0,1e308,1\nb,1,1,1\n")
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1")
    assert_sentence_and_hint(r)
    assert "t.csv:2: duration_s is 1e+308" in r.stderr
    assert "simulator bug" not in r.stderr


# -- 6: priority ----------------------------------------------------------------------------------------------


def test_fractional_priority_is_a_usage_error():
    error = usage_error("a,0,10,1,1.7", extra=",priority")
    assert error.message == "t.csv:2: priority must be an integer from -1,000,000 to 1,000,000, not 1.7"
    assert error.hint


@pytest.mark.parametrize(("cell", "priority"), [("3", 3), ("3.0", 3), ("-2", -2), ("", 0)])
def test_whole_priorities_are_kept(cell, priority):
    (job,) = parse(f"a,0,10,1,{cell}", extra=",priority")
    assert job.priority == priority


def test_line_numbers_count_blank_lines():
    with pytest.raises(UsageError, match=r"^t\.csv:5: duration_s is -1"):
        parse_trace([HEADER, "a,0,1,1", "", "", "b,0,-1,1"], source="t.csv")


# -- 8: options -----------------------------------------------------------------------------------------------


def test_repeated_policies_run_once_in_the_order_given(cli, tmp_path):
    trace = write(tmp_path, trace_csv([("a", 0, 10, 1), ("b", 1, 10, 2)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "sjf,fifo,sjf, fifo", "-o", "json")
    assert r.exit_code == 0, r.stderr
    assert [item["policy"] for item in r.json()["items"]] == ["sjf", "fifo"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "0"), "--nodes must be at least 1, not 0."),
        (("--nodes", "-3"), "--nodes must be at least 1, not -3."),
        (("--nodes", "two"), "--nodes must be a whole number, not 'two'."),
        (("--nodes", "2", "--gpus-per-node", "0"), "--gpus-per-node must be at least 1, not 0."),
        (("--nodes", "2", "--rack-size", "0"), "--rack-size must be at least 1, not 0."),
    ],
)
def test_bad_counts_are_our_one_sentence_usage_error(cli, tmp_path, args, message):
    trace = write(tmp_path, trace_csv([("a", 0, 10, 1)]))
    r = cli("sched", "simulate", "--trace", str(trace), *args)
    assert_sentence_and_hint(r)
    assert r.stderr.splitlines()[0] == f"factoryctl: {message}"
    assert len(r.stderr.splitlines()) == 2


def test_counts_still_accept_good_values(cli, tmp_path):
    trace = write(tmp_path, trace_csv([("a", 0, 10, 4)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "3", "--gpus-per-node", "4", "--rack-size", "1")
    assert r.exit_code == 0, r.stderr


@pytest.fixture
def no_replay(monkeypatch):
    """Fail the test if the replay starts: the checks under test must come first."""
    import factoryctl.scheduler.simulate as simulate

    def refuse(*_args, **_kwargs):
        raise AssertionError("the replay ran before --schedule-out was checked")

    monkeypatch.setattr(simulate, "simulate", refuse)


@pytest.mark.parametrize("kind", ["missing-dir", "directory"])
def test_bad_schedule_out_fails_before_the_replay(cli, tmp_path, no_replay, kind):
    trace = write(tmp_path, trace_csv([("a", 0, 10, 1)]))
    if kind == "missing-dir":
        out = tmp_path / "missing-dir" / "s.csv"
        hint = "hint: check that its directory exists and is writable."
    else:
        out = tmp_path
        hint = "hint: give --schedule-out a file name, not a directory."
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(out))
    assert_sentence_and_hint(r)
    assert f"cannot write schedule {out}" in r.stderr
    assert hint in r.stderr
    assert r.stdout == ""


#: The CLI with its replay refused (as `no_replay`), for a process of its own.
CLI_WITHOUT_REPLAY = (
    "import factoryctl.scheduler.simulate as simulate\n"
    "def refuse(*args, **kwargs):\n"
    "    raise AssertionError('the replay ran before --schedule-out was checked')\n"
    "simulate.simulate = refuse\n"
    "from factoryctl.cli.app import main\n"
    "main()\n"
)


@needs_non_root
def test_a_read_only_schedule_out_directory_fails_before_the_replay():
    """Run by a user the directory's mode applies to (root writes anywhere: as root the CLI runs as nobody).

    The files are that user's, in a directory of its own: the CLI checks the trace with access(), which no
    capability passes.
    """
    with non_root_directory() as home:
        trace = write(home, trace_csv([("a", 0, 10, 1)]))
        locked = home / "locked"
        locked.mkdir(mode=0o555)
        give_to_non_root(trace, locked)
        out = locked / "s.csv"
        argv = [sys.executable, "-c", CLI_WITHOUT_REPLAY, "sched", "simulate", "--trace", str(trace), "--nodes", "1"]
        done = subprocess.run(
            as_non_root([*argv, "--schedule-out", str(out)]), capture_output=True, text=True, timeout=60, check=False
        )
        assert not out.exists()
    assert_sentence_and_hint(SimpleNamespace(exit_code=done.returncode, stderr=done.stderr))
    assert f"cannot write schedule {out}" in done.stderr
    assert "hint: check that its directory exists and is writable." in done.stderr
    assert done.stdout == ""


def test_a_failed_replay_leaves_no_empty_schedule_behind(cli, tmp_path, monkeypatch):
    import factoryctl.scheduler.simulate as simulate

    def broken(*_args, **_kwargs):
        raise FactoryError("simulator bug: test")

    monkeypatch.setattr(simulate, "simulate", broken)
    out = tmp_path / "s.csv"
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, trace_csv([("a", 0, 10, 1)]))), "--nodes", "1",
            "--schedule-out", str(out))  # fmt: skip
    assert r.exit_code == 1
    assert not out.exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_late_write_failure_keeps_the_results_table(cli, tmp_path):
    trace = write(tmp_path, trace_csv([("a", 0, 10, 1)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo",
            "--schedule-out", "/dev/full")  # fmt: skip
    assert_sentence_and_hint(r, code=1)
    assert r.stdout.splitlines()[0].split()[0] == "POLICY"
    assert r.stdout.splitlines()[1].split()[0] == "fifo"
    assert "cannot write schedule /dev/full" in r.stderr
    assert Path("/dev/full").exists()


def test_every_job_rejected_exits_1_and_still_reports_them(cli, tmp_path):
    trace = write(tmp_path, trace_csv([("big", 0, 10, 32), ("bigger", 1, 10, 64)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "fifo,easy", "-o", "json")
    assert_sentence_and_hint(r, code=1)
    assert [(item["jobs"], item["rejected_jobs"]) for item in r.json()["items"]] == [(0, 2), (0, 2)]
    lines = r.stderr.splitlines()
    assert lines[0] == "factoryctl: none of the 2 job(s) in the trace fits on 2 node(s) of 8 GPUs, so nothing ran."
    assert lines[1].startswith("hint: job big needs ")
    assert "--nodes" in lines[1]
    assert "--gpus-per-node" in lines[1]
    assert len(lines) == 2


def test_partly_rejected_still_exits_0(cli, tmp_path):
    trace = write(tmp_path, trace_csv([("ok", 0, 10, 8), ("huge", 1, 10, 64)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "-o", "json")
    assert r.exit_code == 0
    assert "huge" in r.stderr


@pytest.mark.parametrize(
    ("cells", "extra"),
    [("16,,16", ",num_nodes,gpus_per_node"), ("16,1,", ",num_nodes,gpus_per_node"), ("8,2", ",num_nodes")],
)
def test_rejection_for_the_traces_own_shape_points_at_its_columns(cli, tmp_path, cells, extra):
    trace = write(tmp_path, f"{HEADER}{extra}\nok,0,10,1{',' * extra.count(',')}\nwide,0,10,{cells}\n")
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "4", "--gpus-per-node", "2", "--policy", "fifo")
    assert r.exit_code == 0, r.stderr
    assert "wide" in r.stderr
    hint = next(line for line in r.stderr.splitlines() if line.startswith("hint: "))
    assert "num_nodes/gpus_per_node columns" in hint
    assert "--gpus-per-node" in hint


# -- review follow-ups: bounds, blank lines before the header, the trace as its own output -------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--nodes", "100000000"), "--nodes must be at most 100,000, not 100,000,000."),
        (("--nodes", "99999999999999999999999"), "--nodes must be at most 100,000"),
        (("--nodes", "4", "--gpus-per-node", "1000000000"), "--gpus-per-node must be at most 1,024"),
        (("--nodes", "4", "--rack-size", "1000001"), "--rack-size must be at most 100,000"),
    ],
)
def test_counts_have_an_upper_bound(cli, tmp_path, args, message):
    r = cli("sched", "simulate", "--trace", str(write(tmp_path, f"{HEADER}\na,0,10,1\n")), *args)
    assert_sentence_and_hint(r)
    assert message in r.stderr


def test_gpu_counts_in_a_trace_are_bounded():
    error = usage_error("a,0,10,1e300")
    assert error.message.startswith("t.csv:2: num_gpus is 1e+300, more than the 1,000,000 a trace may give")


def test_blank_lines_before_the_header_are_skipped():
    (job,) = parse_trace(["", "  ", HEADER, "a,0,10,1"], source="t.csv")
    assert job.job_id == "a"
    with pytest.raises(UsageError) as caught:
        parse_trace(["", HEADER, "a,0,-1,1"], source="t.csv")
    assert caught.value.message.startswith("t.csv:3: ")  # physical line numbers, blank lines counted


def test_the_trace_is_never_its_own_schedule_out(cli, tmp_path):
    trace = write(tmp_path, f"{HEADER}\na,0,10,1\n")
    before = trace.read_text()
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(tmp_path / "." / "t.csv"))
    assert_sentence_and_hint(r)
    assert "is the trace itself" in r.stderr
    assert trace.read_text() == before


def test_every_printed_error_is_a_sentence_with_its_full_stop(cli, tmp_path):
    r = cli(
        "sched",
        "simulate",
        "--trace",
        str(write(tmp_path, f"{HEADER}\na,0,10,1\n")),
        "--nodes",
        "1",
        "--policy",
        "nope",
    )
    assert_sentence_and_hint(r)
    assert r.stderr.splitlines()[0] == "factoryctl: unknown policy 'nope'."


@needs_non_root
def test_a_read_only_schedule_out_file_is_named_as_the_problem():
    """An existing schedule file its user cannot write, in a directory it can: the hint is about the file."""
    with non_root_directory() as home:
        trace = write(home, trace_csv([("a", 0, 10, 1)]))
        out = home / "s.csv"
        out.write_text("kept\n")
        give_to_non_root(trace, out)
        out.chmod(0o444)
        argv = [sys.executable, "-c", CLI_WITHOUT_REPLAY, "sched", "simulate", "--trace", str(trace), "--nodes", "1"]
        done = subprocess.run(
            as_non_root([*argv, "--schedule-out", str(out)]), capture_output=True, text=True, timeout=60, check=False
        )
        assert out.read_text() == "kept\n"
    assert_sentence_and_hint(SimpleNamespace(exit_code=done.returncode, stderr=done.stderr))
    assert f"cannot write schedule {out}" in done.stderr
    assert "hint: the file exists and is read-only: make it writable (chmod u+w) or give --schedule-out" in done.stderr
