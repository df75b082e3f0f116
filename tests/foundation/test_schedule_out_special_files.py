"""`--schedule-out` a FIFO: opened only to be written, and that wait for a reader ends on Ctrl-C (130) or SIGTERM (143).

The schedule file was opened before the replay with SIGINT, SIGTERM and SIGHUP held (they guard the temporary file a
regular output is written to first); opening a FIFO waits for its reader, so one nobody read hung `sched simulate`
and `power simulate` for good, every signal but SIGKILL held off. And several signals let through together when
such a hold ended broke into one another's clean-up: two tracebacks instead of `factoryctl: terminated`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from stop_messages import STOP_IDS, STOPS, TERMINATED
from waiting import wait_for

TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\nb,5,20,2\n"
CURVE = (
    "gpu,max_power_limit_w,workload,batch_size,power_limit_w,pl_frac,throughput_rel,avg_power_w,power_rel\n"
    "TGPU,400,bench/toy,32,100,0.25,0.30,105.0,0.35\n"
    "TGPU,400,bench/toy,32,200,0.5,0.70,168.0,0.56\n"
    "TGPU,400,bench/toy,32,300,0.75,0.92,234.0,0.78\n"
    "TGPU,400,bench/toy,32,400,1.0,1.0,300.0,1.0\n"
)

pytestmark = pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs /proc/PID/wchan (Linux)")


def prices_text(hours: int = 48) -> str:
    rows = [f"2023-11-15T{h % 24:02d}:00:00Z" if h < 24 else f"2023-11-16T{h % 24:02d}:00:00Z" for h in range(hours)]
    return "timestamp_utc,price_per_mwh\n" + "".join(f"{t},{60 + (i % 24) * 3}\n" for i, t in enumerate(rows))


def commands(tmp_path: Path, fifo: Path) -> dict[str, list[str]]:
    """Each command that takes --schedule-out, writing to `fifo`, on small inputs in `tmp_path`."""
    trace, prices, curve = tmp_path / "trace.csv", tmp_path / "prices.csv", tmp_path / "curves.csv"
    trace.write_text(TRACE)
    prices.write_text(prices_text())
    curve.write_text(CURVE)
    return {
        "sched": ["sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", str(fifo)],
        "power": [
            "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
            "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", "--schedule-out",
            str(fifo),
        ],
    }  # fmt: skip


def waiting_for_a_reader(proc: subprocess.Popen[str]) -> bool:
    """Whether `proc` is blocked opening a FIFO that has no reader (the kernel's wait_for_partner)."""
    try:
        return Path(f"/proc/{proc.pid}/wchan").read_text() == "wait_for_partner"
    except OSError:
        return False


@pytest.mark.parametrize("command", ["sched", "power"])
@pytest.mark.parametrize(("sig", "status", "said"), STOPS, ids=STOP_IDS)
def test_a_fifo_without_a_reader_is_waited_for_after_the_results_and_a_stop_ends_the_wait(
    tmp_path: Path, command: str, sig: signal.Signals, status: int, said: list[str]
) -> None:
    fifo = tmp_path / "schedule.fifo"
    os.mkfifo(fifo)
    args = commands(tmp_path, fifo)[command]
    proc = subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with reaped(proc):
        wait_for(lambda: waiting_for_a_reader(proc) or proc.poll() is not None, timeout=60, what="the FIFO's open")
        assert proc.poll() is None, proc.communicate()
        assert "SigBlk:\t0000000000000000" in Path(f"/proc/{proc.pid}/status").read_text()  # nothing held meanwhile
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err.splitlines()) == (status, said)
    assert out.strip(), "the results are printed before the wait"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.csv", "prices.csv", "schedule.fifo", "trace.csv"]


def test_a_fifo_with_a_reader_gets_the_schedule(tmp_path: Path) -> None:
    fifo = tmp_path / "schedule.fifo"
    os.mkfifo(fifo)
    args = commands(tmp_path, fifo)["sched"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "-q", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    with reaped(proc):
        wait_for(lambda: waiting_for_a_reader(proc) or proc.poll() is not None, timeout=60, what="the FIFO's open")
        with fifo.open() as reader:  # the writer is waiting for us: this open does not block
            schedule = reader.read()
        out, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (0, "")
    assert schedule.splitlines()[0] == "job_id,policy,submit_s,start_s,end_s,allocation"
    assert "POLICY" in out


#: Opens a regular output file with removed_on_failure while Ctrl-C twice and a SIGTERM come: held, then let through.
SEVERAL_SIGNALS = """
import os, signal, sys
from pathlib import Path
from factoryctl.cli.outfile import open_out_file, removed_on_failure

def opened_while_stopped():
    out = open_out_file(Path(sys.argv[1]), "--schedule-out", "the schedule", [])
    for sig in (signal.SIGINT, signal.SIGINT, signal.SIGTERM):
        signal.raise_signal(sig)
    return out

with removed_on_failure(opened_while_stopped):
    print("not stopped")
"""


def test_several_signals_held_while_the_file_opens_end_it_once_without_a_traceback(tmp_path: Path) -> None:
    target = tmp_path / "schedule.csv"
    done = subprocess.run(
        [sys.executable, "-c", SEVERAL_SIGNALS, str(target)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (143, TERMINATED, "")
    assert list(tmp_path.iterdir()) == []  # the temporary file dropped, no schedule written
