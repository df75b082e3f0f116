"""`--schedule-out` written beside and renamed over: what a rename must not change (a review of that change).

A file we may not write stays refused (a rename would replace it anyway); a new file gets the umask's permissions
(a temporary file's are 0600); SIGTERM mid-replay (cron's `timeout`) leaves no temporary file; and `/dev/stdout`
while stdout is a file is written as `-` (renaming over it lost the results). Real processes: signals, umask and
stdout are the process's own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from power_data import SERIES, series, write_prices
from reaping import reaped
from test_power_simulate_cli import simulate_args
from waiting import wait_for


def _argv(prices: Path, curve: Path, out: str) -> list[str]:
    args = simulate_args(prices, curve, "--price-visibility", "day-ahead", "--schedule-out", out)
    return [sys.executable, "-m", "factoryctl", *args]


def _small(tmp_path: Path) -> Path:
    return write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](48)))


def test_a_file_we_may_not_write_is_refused_not_replaced(tmp_path: Path, curve_file: Path) -> None:
    target = tmp_path / "schedule.csv"
    target.write_text("old\n")
    target.chmod(0o444)
    argv = _argv(_small(tmp_path), curve_file, str(target))
    if os.geteuid() == 0:  # root may write anything: drop the capabilities that let it, as an operator has none
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "util-linux's setpriv is needed to test this as root"
        caps = "-dac_override,-dac_read_search,-fowner"
        argv = [setpriv, f"--bounding-set={caps}", f"--inh-caps={caps}", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert "Permission denied" in done.stderr
    assert target.read_text() == "old\n"


def test_a_new_file_gets_the_umasks_permissions(tmp_path: Path, curve_file: Path) -> None:
    target = tmp_path / "schedule.csv"
    done = subprocess.run(
        _argv(_small(tmp_path), curve_file, str(target)),
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=lambda: os.umask(0o027),
    )
    assert done.returncode == 0, done.stderr
    assert target.stat().st_mode & 0o777 == 0o640  # 0666 less the umask, not a temporary file's 0600


def test_sigterm_mid_replay_leaves_no_temporary_file(tmp_path: Path, curve_file: Path) -> None:
    hours = 24 * 365 * 6  # six years: a replay of some seconds, to be ended while it runs
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](hours)))
    out = tmp_path / "out"
    out.mkdir()
    with reaped(subprocess.Popen(_argv(prices, curve_file, str(out / "fresh.csv")), stderr=subprocess.PIPE)) as proc:
        wait_for(lambda: any(out.iterdir()), timeout=120)  # the temporary file: the replay runs
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.decode().splitlines()[-2:] == [
        "factoryctl: terminated",
        "hint: SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command again, with more time if a"
        " time limit ended it.",
    ]
    assert list(out.iterdir()) == []


def test_dev_stdout_into_a_file_is_written_as_dash(tmp_path: Path, curve_file: Path) -> None:
    captured = tmp_path / "captured.txt"
    with captured.open("w") as stdout:
        done = subprocess.run(
            _argv(_small(tmp_path), curve_file, "/dev/stdout"), stdout=stdout, stderr=subprocess.PIPE, timeout=120
        )
    assert done.returncode == 0, done.stderr
    assert captured.read_text().startswith("timestamp_utc,price_per_mwh,power_limit_frac\n")
    assert b"saving" in done.stderr  # the results, on stderr as with `-` (renaming over the file lost them)
