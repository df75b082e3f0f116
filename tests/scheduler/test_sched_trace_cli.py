"""Trace parsing, bad input, and `factoryctl sched simulate` end to end (re-validated independently)."""

from __future__ import annotations

import random

import pytest
from helpers import trace_csv
from schedule_validator import validate

from factoryctl.errors import UsageError
from factoryctl.scheduler.trace import parse_trace


def synthetic_trace(count: int = 60, seed: int = 7) -> str:
    rng = random.Random(seed)
    rows, extra = [], []
    t = 0.0
    for i in range(count):
        t += rng.expovariate(1 / 300)
        gpus = rng.choice([1, 1, 1, 2, 4, 8, 8, 16])
        rows.append((f"job{i}", round(t), rng.randint(60, 20000), gpus))
        extra.append(f",{max(1, gpus // 8)},{min(gpus, 8)}")
    return trace_csv(rows, ",num_nodes,gpus_per_node", extra)


def test_parse_trace_reads_optional_columns():
    text = "job_id,submit_time_s,duration_s,num_gpus,num_nodes,gpus_per_node,priority,walltime_s,vc\n"
    text += "a,0,100,16,2,8,3,200,x\nb,5,50,2,,,,,y\n"
    a, b = parse_trace(text.splitlines())
    assert (a.gpus_per_node, a.priority, a.walltime_s, a.runtime_s) == (8, 3, 200.0, 100.0)
    assert (b.gpus_per_node, b.walltime_s) == (None, 50.0)


def test_walltime_shorter_than_duration_cuts_the_run():
    (job,) = parse_trace(["job_id,submit_time_s,duration_s,num_gpus,walltime_s", "a,0,100,1,40"])
    assert job.runtime_s == 40


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("job_id,submit_time_s,num_gpus\na,0,1\n", "missing column(s) duration_s"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,-5,1\n", "must not be negative"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,0\n", "num_gpus must be a whole number"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,five,1\n", "duration_s is not a number"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,nan,1\n", "not a finite number"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,5,1\na,1,5,1\n", "appears twice"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,1_000,5,1\n", "submit_time_s is not a number: '1_000'"),
        ("job_id,submit_time_s,duration_s,num_gpus,priority\na,0,5,1,1e308\n", "priority must be an integer from"),
        ("job_id,submit_time_s,duration_s,num_gpus,gpus_per_node\na,0,5,12,5\n", "does not split"),
        ("job_id,submit_time_s,duration_s,num_gpus\n", "has no jobs"),
        ('job_id,submit_time_s,duration_s,num_gpus\na,0,5,1\nb,0,5,"' + "x" * 200_000 + '"\n', r"t.csv:3: cannot read"),
        ("", "missing column"),
    ],
)
def test_bad_traces_are_usage_errors(text, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_trace(text.splitlines(), source="t.csv")


def test_error_names_file_and_line():
    with pytest.raises(UsageError, match=r"t\.csv:3: "):
        parse_trace(["job_id,submit_time_s,duration_s,num_gpus", "a,0,5,1", "b,0,-1,1"], source="t.csv")


def test_simulate_json_fields_and_schedule_out_revalidated(cli, tmp_path):
    text = synthetic_trace()
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    out = tmp_path / "schedule.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "4", "--gpus-per-node", "8",
            "--policy", "fifo,sjf,easy,default", "-o", "json", "--schedule-out", str(out))  # fmt: skip
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert doc["schema_version"] == 1
    items = {item["policy"]: item for item in doc["items"]}
    assert set(items) == {"fifo", "sjf", "easy", "default"}
    for item in items.values():
        for key in ("jobs", "avg_jct_s", "avg_queue_s", "p50_queue_s", "p99_queue_s", "max_queue_s",
                    "big_jobs", "big_avg_jct_s", "big_max_queue_s", "gpu_utilization", "makespan_s",
                    "pass_time_p50_ms", "pass_time_p99_ms"):  # fmt: skip
            assert key in item
        assert item["jobs"] == 60
        assert 0 < item["gpu_utilization"] <= 1
    assert items["sjf"]["avg_jct_s"] <= items["fifo"]["avg_jct_s"]
    schedule = out.read_text()
    assert schedule.splitlines()[0] == "job_id,policy,submit_s,start_s,end_s,allocation"
    assert len(schedule.splitlines()) == 1 + 4 * 60
    assert validate(schedule, text, nodes=4, gpus_per_node=8) == []


def test_validator_catches_a_broken_schedule(cli, tmp_path):
    text = synthetic_trace(20)
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    out = tmp_path / "schedule.csv"
    assert cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "easy",
               "--schedule-out", str(out)).exit_code == 0  # fmt: skip
    lines = out.read_text().splitlines()
    row = lines[1].split(",")
    row[3] = str(float(row[2]) - 1)  # start before submit
    lines[1] = ",".join(row)
    assert any("before submission" in p for p in validate("\n".join(lines), text, 2, 8))
    squeezed = [lines[0]] + [",".join([*line.split(",")[:5], "n001:8"]) for line in lines[1:]]
    assert validate("\n".join(squeezed), text, 2, 8)


def test_table_output_and_single_policy(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(synthetic_trace(10))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "default")
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0].split()[0] == "POLICY"
    assert r.stdout.splitlines()[1].split()[0] == "default"


def test_job_larger_than_cluster_is_reported_not_hung(cli, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("ok", 0, 10, 8), ("huge", 1, 10, 64)]))
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "-o", "json")
    assert r.exit_code == 0
    assert "can never run on this cluster" in r.stderr
    assert "huge" in r.stderr
    item = r.json()["items"][0]
    assert (item["jobs"], item["rejected_jobs"]) == (1, 1)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("job_id,submit_time_s,duration_s,num_gpus\n", (), "has no jobs"),
        ("job_id,submit_time_s,num_gpus\na,0,1\n", (), "missing column"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,-3,1\n", (), "must not be negative"),
        ("job_id,submit_time_s,duration_s,num_gpus\na,0,3,1\n", ("--policy", "lottery"), "unknown policy"),
    ],
)
def test_bad_input_exits_2_with_a_sentence(cli, tmp_path, content, args, message):
    trace = tmp_path / "trace.csv"
    trace.write_text(content)
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", *args)
    assert r.exit_code == 2
    assert message in r.stderr
    assert "\nhint: " in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_schedule_out_is_a_usage_error_with_a_hint(cli, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus\na,0,10,8\n")
    out = tmp_path / "missing-dir" / "s.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(out))
    assert r.exit_code == 2
    assert "hint: check that its directory exists and is writable." in r.stderr


def test_missing_trace_file_and_bad_nodes(cli, tmp_path):
    r = cli("sched", "simulate", "--trace", str(tmp_path / "nope.csv"), "--nodes", "2")
    assert r.exit_code == 2
    assert "cannot read trace" in r.stderr
    assert "hint: check the path given to --trace." in r.stderr
    assert cli("sched", "simulate", "--trace", "x.csv", "--nodes", "0").exit_code == 2


def test_scheduler_imports_no_io_or_ui_libraries():
    import json
    import subprocess
    import sys

    probe = (
        "import sys, json\nimport factoryctl.scheduler.decide, factoryctl.scheduler.simulate, "
        "factoryctl.scheduler.metrics, factoryctl.model.jobs\nprint(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    roots = {name.split(".")[0] for name in json.loads(done.stdout)}
    assert not roots & {"paramiko", "pynvml", "textual", "rich", "typer", "yaml", "pydantic"}


def test_racks_keep_gangs_together(cli, tmp_path):
    text = synthetic_trace(40, seed=3)
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    out = tmp_path / "schedule.csv"
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "6", "--rack-size", "3", "--policy", "default",
            "--schedule-out", str(out), "-o", "json")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert validate(out.read_text(), text, nodes=6, gpus_per_node=8) == []
    # With this trace there is always a rack with room for the whole gang, so none should span two racks.
    rack = {f"n{i + 1:03d}": i // 3 for i in range(6)}
    for line in out.read_text().splitlines()[1:]:
        nodes = [part.split(":")[0] for part in line.split(",")[5].split()]
        assert len({rack[n] for n in nodes}) == 1


def test_sched_help_lists_simulate(cli):
    r = cli("sched", "--help")
    assert r.exit_code == 0
    assert "simulate" in r.stdout


def test_an_uneven_gang_frees_its_spare_gpu_once_it_runs(cli, tmp_path):
    """11 GPUs on 8-GPU nodes are placed as 2 x 6 and run as 6 + 5: the 12th GPU is free for the next job."""
    text = trace_csv([("A", 0, 1000, 11), ("B", 10, 100, 3)])
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    out = tmp_path / "schedule.csv"
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "fifo,default",
                 "--schedule-out", str(out))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert {(row[0], row[1], row[3], row[5]) for row in rows} == {
        ("A", "fifo", "0", "n001:6 n002:5"), ("B", "fifo", "10", "n002:3"),
        ("A", "default", "0", "n001:6 n002:5"), ("B", "default", "10", "n002:3"),
    }  # fmt: skip
    assert validate(out.read_text(), text, nodes=2, gpus_per_node=8) == []


def test_schedule_out_quotes_a_job_id_with_a_comma(cli, tmp_path):
    import csv

    trace = tmp_path / "trace.csv"
    trace.write_text('job_id,submit_time_s,duration_s,num_gpus\n"a,b",0,10,1\nplain,1,10,1\n')
    out = tmp_path / "schedule.csv"
    result = cli(
        "sched", "simulate", "--trace", str(trace), "--nodes", "1", "--policy", "fifo", "--schedule-out", str(out)
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(out.open(newline="")))
    assert rows[1] == ["a,b", "fifo", "0", "0", "10", "n001:1"]
    assert all(len(row) == 6 for row in rows)


def test_schedule_out_into_a_closed_pipe_ends_quietly_with_141(tmp_path):
    """`--schedule-out /dev/stdout | head -1`: the reader goes away mid-schedule (it said "free some space", exit 1)."""
    import subprocess

    from cli_process import CLI_ARGV

    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([(f"j{i}", i, 10, 1) for i in range(4000)]))  # a schedule larger than a pipe holds
    argv = [*CLI_ARGV, "sched", "simulate"]
    argv += ["--trace", str(trace), "--nodes", "1", "--policy", "fifo,sjf", "--schedule-out", "/dev/stdout"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert proc.stdout.readline() == b"job_id,policy,submit_s,start_s,end_s,allocation\n"  # the table: on stderr
    proc.stdout.close()
    assert proc.wait(60) == 141
    assert proc.stderr.read().split(b"\n")[0].split()[0] == b"POLICY"  # the table alone: 141 says nothing
    proc.stderr.close()


def test_a_semicolon_separated_trace_gets_a_hint_about_commas():
    with pytest.raises(UsageError) as caught:
        parse_trace(["job_id;submit_time_s;duration_s;num_gpus", "a;0;5;1"], source="t.csv")
    assert caught.value.hint is not None
    assert caught.value.hint.startswith("the trace is comma-separated")


def test_schedule_out_dash_writes_the_schedule_to_stdout_and_the_table_to_stderr(cli, tmp_path, monkeypatch):
    """`--schedule-out -` pipes the schedule on (it wrote a file named `-`); the table moves out of its way."""
    text = synthetic_trace(20)
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    monkeypatch.chdir(tmp_path)
    r = cli("sched", "simulate", "--trace", str(trace), "--nodes", "2", "--policy", "fifo,default",
            "--schedule-out", "-")  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "-").exists()
    assert r.stdout.splitlines()[0] == "job_id,policy,submit_s,start_s,end_s,allocation"
    assert len(r.stdout.splitlines()) == 1 + 2 * 20
    assert validate(r.stdout, text, nodes=2, gpus_per_node=8) == []
    assert "POLICY" in r.stderr
    assert "default" in r.stderr


def test_quiet_leaves_out_the_note_of_an_empty_explain_listing(cli, tmp_path):
    """`-q` left `sched simulate`'s notes out but not `sched explain`'s "every job submitted by ... has ended"."""
    trace = tmp_path / "trace.csv"
    trace.write_text(trace_csv([("a", 0, 10, 1)]))
    base = ("sched", "explain", "--trace", str(trace), "--nodes", "1", "--at", "1000", "-o", "json")
    quiet = cli("-q", *base)
    assert (quiet.exit_code, quiet.stderr, quiet.json()["items"]) == (0, "", [])
    assert "every job submitted by 1000 s has ended" in cli(*base).stderr  # said without -q


@pytest.mark.parametrize(
    "command",
    [["sched", "simulate", "--nodes", "2", "-o", "json"], ["sched", "explain", "--nodes", "2", "--at", "1000"]],
    ids=["simulate", "explain"],
)
def test_trace_dash_reads_the_trace_from_stdin(cli, tmp_path, command):
    """`--trace -` was "cannot read trace -: No such file or directory" (`--schedule-out -` writes stdout)."""
    text = synthetic_trace(20)
    trace = tmp_path / "trace.csv"
    trace.write_text(text)
    from_file = cli(*command, "--trace", str(trace))
    from_stdin = cli(*command, "--trace", "-", stdin=text)
    assert from_stdin.exit_code == from_file.exit_code == 0, from_stdin.stderr
    if command[1] == "simulate":  # the pass times differ from run to run; the schedule's figures do not
        documents = from_file.json(), from_stdin.json()
        for item in (*documents[0]["items"], *documents[1]["items"]):
            item.pop("pass_time_p50_ms"), item.pop("pass_time_p99_ms")
        assert documents[1] == documents[0]
    else:
        assert from_stdin.stdout == from_file.stdout


def test_trace_dash_on_a_terminal_is_a_usage_error(cli):
    r = cli("sched", "simulate", "--trace", "-", "--nodes", "1", tty=True)
    assert r.exit_code == 2
    assert r.stderr.splitlines()[0] == "factoryctl: --trace - reads the trace from stdin, which is a terminal."


def test_trace_dash_names_stdin_in_its_errors():
    """A real pipe: the trace's bytes come through stdin's binary layer, and a bad line is `stdin:LINE`."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "factoryctl", "sched", "explain", "--trace", "-", "--nodes", "1", "--at", "0"]
    bad = b"job_id,submit_time_s,duration_s,num_gpus\na,0,5,1\nb,0,\xff,1\n"
    done = subprocess.run(argv, input=bad, capture_output=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.decode().splitlines()[0] == "factoryctl: stdin:3: the trace is not UTF-8 text (byte 0xff)."
    good = subprocess.run(argv, input=b"\xef\xbb\xbf" + bad[:-9], capture_output=True, timeout=60, check=False)
    assert (good.returncode, good.stdout.splitlines()[1].split()[:2]) == (0, [b"a", b"STARTING"]), good.stderr


def test_a_stop_while_the_results_are_written_leaves_no_temporary_file(cli, tmp_path, monkeypatch):
    """The results were printed after the output file's clean-up ended: a Ctrl-C there left `.schedule.csv.XXXX`."""
    import factoryctl.cli.sched as sched_cli

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sched_cli, "_report", stopped)
    (tmp_path / "schedule.csv").write_text("kept\n")
    (tmp_path / "t.csv").write_text("job_id,submit_time_s,duration_s,num_gpus\na,0,10,8\n")
    result = cli("sched", "simulate", "--trace", "t.csv", "--nodes", "1", "--schedule-out", "schedule.csv")
    assert result.exit_code == 130, result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert (tmp_path / "schedule.csv").read_text() == "kept\n"  # the file that was there is untouched
