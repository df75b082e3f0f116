"""Review 13 of `sched simulate` / `sched explain`: the fixes below, each pinned by the behaviour a user sees.

An endless input that is no trace (`yes | factoryctl sched simulate --trace -`) was read until memory ran out; it is
now refused at its header line. The pipes are fed by a thread that stops when the reader closes them, so "refused
early" is counted in bytes written, never timed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from factoryctl.cli.signals import STOPPED_HINTS, STOPPED_WORDS

#: Far more than the command may read before refusing an endless input (the size cap is 1 GiB).
ENDLESS = 64 * 1024 * 1024
NOT_A_TRACE = "stdin:1: missing column(s) job_id, submit_time_s, duration_s, num_gpus"


def _feed(pipe: IO[bytes], written: list[int]) -> None:
    """Write `y` lines (what `yes` writes) into `pipe` until ENDLESS bytes or until its reader goes away."""
    piece = b"y\n" * 32 * 1024
    try:
        while written[0] < ENDLESS:
            pipe.write(piece)
            written[0] += len(piece)
        pipe.close()
    except (BrokenPipeError, ValueError):
        pass


def _endless_into(trace: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`yes | factoryctl sched simulate --trace TRACE --nodes 1`: its result and how many bytes it let in."""
    command = [sys.executable, "-m", "factoryctl", "sched", "simulate", "--trace", trace, "--nodes", "1"]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdin is not None
    written = [0]
    feeder = threading.Thread(target=_feed, args=(process.stdin, written), daemon=True)
    feeder.start()
    process.wait(timeout=120)  # its output is a few lines: no pipe fills while it runs
    out, err = (stream.read() if stream is not None else b"" for stream in (process.stdout, process.stderr))
    feeder.join(timeout=60)
    return subprocess.CompletedProcess(command, process.returncode, out.decode(), err.decode()), written[0]


def test_an_endless_pipe_that_is_no_trace_is_refused_at_its_header_line() -> None:
    result, written = _endless_into("-")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"factoryctl: {NOT_A_TRACE}."
    assert written < 16 * 1024 * 1024


def test_dev_stdin_is_refused_at_its_header_line_too() -> None:
    result, written = _endless_into("/dev/stdin")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == f"factoryctl: /dev/{NOT_A_TRACE}."
    assert written < 16 * 1024 * 1024


def _blocked_opening_fifo(pid: int) -> bool:
    """Whether process `pid` waits in the open of a FIFO for its reader (Linux: its wchan is `wait_for_partner`)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux's /proc/PID/wchan")
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_table_is_in_redirected_stdout_before_the_fifo_waits_and_a_stop_keeps_it(
    tmp_path: Path, stop: signal.Signals
) -> None:
    trace, fifo, out = tmp_path / "ok.csv", tmp_path / "schedule", tmp_path / "out.txt"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\nb,1,10,1\n")
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "factoryctl", "-q", "sched", "simulate", "--trace", str(trace), "--nodes", "1"]
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # as a user runs it
    with out.open("w") as stdout:
        process = subprocess.Popen(
            [*command, "--policy", "fifo", "--schedule-out", str(fifo)],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=buffered,
        )
    try:
        deadline = time.monotonic() + 120  # a loaded machine's start-up, not what is tested
        while not _blocked_opening_fifo(process.pid):
            assert process.poll() is None, "it ended before opening the FIFO"
            assert time.monotonic() < deadline, "it never waited for the FIFO's reader"
            time.sleep(0.05)
        table = out.read_text()
        assert table.startswith("POLICY")  # printed while the FIFO waits
        assert "\nfifo " in table
        process.send_signal(stop)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + stop
    assert out.read_text() == table
    assert err.decode() == f"factoryctl: {STOPPED_WORDS[128 + stop]}\nhint: {STOPPED_HINTS[128 + stop]}\n"


def test_a_hang_up_is_said_with_a_sentence_and_hint_and_documented() -> None:
    assert STOPPED_WORDS[129] == "hung up"
    assert STOPPED_HINTS[129].startswith("SIGHUP stopped it (exit 129")
    exit_codes = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    assert "129 hung up (SIGHUP" in " ".join(exit_codes.split())


TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\nb,1,10,1\n"


def _trace(tmp_path: Path, text: str = TRACE, name: str = "ok.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_repeated_policy_adds_to_the_list_as_a_comma_does(cli: Callable[..., Any], tmp_path: Path) -> None:
    trace = _trace(tmp_path)
    repeated = cli("sched", "simulate", "--trace", trace, "--nodes", "1", "--policy", "easy", "--policy", "fifo,sjf")
    assert repeated.exit_code == 0, repeated.stderr
    assert [row.split()[0] for row in repeated.stdout.splitlines()[1:]] == ["easy", "fifo", "sjf"]
    listed = cli("sched", "simulate", "--trace", trace, "--nodes", "1", "--policy", "easy,fifo,sjf")
    assert listed.stdout == repeated.stdout
    every = cli("sched", "simulate", "--trace", trace, "--nodes", "1")
    assert [row.split()[0] for row in every.stdout.splitlines()[1:]] == ["fifo", "sjf", "easy", "default"]


def test_explain_refuses_a_second_policy_rather_than_dropping_one(cli: Callable[..., Any], tmp_path: Path) -> None:
    args = ("sched", "explain", "--trace", _trace(tmp_path), "--nodes", "1", "--at", "5")
    result = cli(*args, "--policy", "easy", "--policy", "fifo")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == "factoryctl: sched explain replays one policy, not 2 (easy, fifo)."
    assert cli(*args, "--policy", "easy").exit_code == 0


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("b,1,10", "the row has 3 fields but the header names 4 columns, so num_gpus is missing"),
        ("b", "the row has 1 field but the header names 4 columns, so submit_time_s, duration_s, num_gpus are missing"),
    ],
)
def test_a_short_row_is_said_to_be_short(cli: Callable[..., Any], tmp_path: Path, row: str, said: str) -> None:
    trace = _trace(tmp_path, f"job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\n{row}\n", "short.csv")
    result = cli("sched", "simulate", "--trace", trace, "--nodes", "1")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"factoryctl: {trace}:3: {said}."


def test_a_row_ending_before_optional_columns_only_still_replays(cli: Callable[..., Any], tmp_path: Path) -> None:
    trace = _trace(tmp_path, "job_id,submit_time_s,duration_s,num_gpus,priority\na,0,10,1\nb,1,10,1,5\n")
    assert cli("-q", "sched", "simulate", "--trace", trace, "--nodes", "1").exit_code == 0


def test_a_claim_on_one_victim_says_it_has_stopped_and_on_two_they_have() -> None:
    import dataclasses

    from factoryctl.scheduler.policy import POLICIES
    from factoryctl.scheduler.replay_explain import explain_at
    from factoryctl.scheduler.simulate import cluster_nodes
    from factoryctl.scheduler.trace import TraceJob

    config = dataclasses.replace(POLICIES["default"], preemption=True, grace_s=50.0)
    one = [TraceJob("low", 0, 1000, 8, None, 0, 1000), TraceJob("vip", 100, 500, 8, None, 5, 500)]
    (vip,) = explain_at(one, cluster_nodes(1, 8), config, 120.0, ["vip"]).jobs
    assert vip.reason == "preempting low: takes over n001 and starts at 150 s (in 30 s), when it has stopped"
    two = [TraceJob(f"low{i}", 0, 1000, 4, None, 0, 1000) for i in (1, 2)] + [
        TraceJob("vip", 100, 500, 8, None, 5, 500)
    ]
    (vip,) = explain_at(two, cluster_nodes(1, 8), config, 120.0, ["vip"]).jobs
    assert vip.reason.endswith(", when they have stopped")


def test_a_start_names_its_nodes_in_natural_order() -> None:
    from factoryctl.scheduler.freemap import FreeMap
    from factoryctl.scheduler.passdata import Started
    from factoryctl.scheduler.reasons import describe_start

    names = ["n9", "n10", "n2", "n003", "n1"]
    fm = FreeMap(names, [8] * len(names), [""] * len(names))
    started = Started(None, (1, 3, 0, 2), False)  # type: ignore[arg-type]  # the job is not described
    assert describe_start(started, fm) == "started on n2, n003, n9, n10"


@pytest.mark.parametrize("at", ["1e5s", "1E5S", "100000", "1e5", "1.0e5 s"])
def test_at_takes_a_unit_after_any_number_it_takes(cli: Callable[..., Any], tmp_path: Path, at: str) -> None:
    args = ("-q", "sched", "explain", "--trace", _trace(tmp_path), "--nodes", "1", "-o", "json")
    result = cli(*args, "--at", at)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == cli(*args, "--at", "100000").stdout


def test_the_explain_progress_line_gives_the_instant_exactly(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import contextlib

    from factoryctl.cli import progress

    labels: list[str] = []

    @contextlib.contextmanager
    def heard(label: str, quiet: bool, *rest: Any, **more: Any) -> Any:
        labels.append(label)
        yield None

    monkeypatch.setattr(progress, "replay_progress", heard)
    cli("sched", "explain", "--trace", _trace(tmp_path), "--nodes", "1", "--at", "35d")
    assert labels == ["replaying default to 3024000 s"]


def _complete(words: str, cwd: Path) -> list[str]:
    """What bash completion offers for `words` (the last one being completed), asked as bash asks it."""
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_explain_completes_job_ids_from_the_trace_given(tmp_path: Path) -> None:
    _trace(tmp_path, "job_id,submit_time_s,duration_s,num_gpus\nalpha,0,10,1\nbeta,1,10,1\nalps,2,3,1\n", "t.csv")
    base = "factoryctl sched explain --trace t.csv --nodes 1 --at 5"
    assert _complete(f"{base} --job ", tmp_path) == ["alpha", "beta", "alps"]
    assert _complete(f"{base} --job al", tmp_path) == ["alpha", "alps"]
    assert _complete(f"{base} --job alpha --job ", tmp_path) == ["beta", "alps"]
    assert _complete("factoryctl sched explain --trace - --job ", tmp_path) == []  # stdin is never read
