"""A burst of signals (`kill` in a loop) ends a run with an output file once: one report, no temporary file left.

Every SIGTERM and SIGHUP used to raise again inside the clean-up of the first (`sched simulate --schedule-out`,
`TERM*300`): the temporary file was left, and the exit printed `factoryctl.cli.outfile._Ended: <exception str()
failed>`. The burst is sent here from inside the clean-up itself (the discard of the file, the report), so it
always lands there; each case runs in a process of its own, as the handlers are the process's.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from stop_messages import HUNG_UP, TERMINATED

BURST_IN_CLEAN_UP = """
import os, signal, sys, time
from pathlib import Path
from factoryctl.cli import outfile, signals
from factoryctl.cli.outfile import OutFile, open_out_file, removed_on_failure

def burst():
    for _ in range(20):
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.raise_signal(sig)

discard, report = OutFile.discard, signals.report_stopped
OutFile.discard = lambda self: (burst(), discard(self))[1]
signals.report_stopped = lambda status, sentence=None: (burst(), report(status, sentence))[1]
try:
    with removed_on_failure(lambda: open_out_file(Path(sys.argv[1]), "--schedule-out", "the schedule", [])):
        signal.raise_signal(int(sys.argv[2]))
        time.sleep(10)
except KeyboardInterrupt:
    print("interrupted once")
    sys.exit(130)
print("not stopped")
"""


def _run_with_burst(tmp_path: Path, first: signal.Signals) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "schedule.csv"
    return subprocess.run(
        [sys.executable, "-c", BURST_IN_CLEAN_UP, str(target), str(int(first))],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("first", "status", "said"), [(signal.SIGTERM, 143, TERMINATED), (signal.SIGHUP, 129, HUNG_UP)]
)
def test_a_burst_after_sigterm_or_sighup_is_reported_once(
    tmp_path: Path, first: signal.Signals, status: int, said: list[str]
) -> None:
    done = _run_with_burst(tmp_path, first)
    assert (done.returncode, done.stderr.splitlines(), done.stdout) == (status, said, "")
    assert list(tmp_path.iterdir()) == []  # the temporary file dropped, no schedule written


def test_a_burst_after_ctrl_c_leaves_as_one_keyboard_interrupt(tmp_path: Path) -> None:
    done = _run_with_burst(tmp_path, signal.SIGINT)
    assert (done.returncode, done.stderr, done.stdout) == (130, "", "interrupted once\n")
    assert list(tmp_path.iterdir()) == []
