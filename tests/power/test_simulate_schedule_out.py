"""`power simulate --schedule-out` never writes over an input, `-` is stdout, and a late write failure keeps results.

As `sched simulate` does: the schedule file is opened before the replay (a bad path fails at once, exit 2), naming
the --prices, --curve or --policy file (in any spelling, or through a link) is refused before anything is written,
and the results are printed before the schedule is written, so a full disk is exit 1 with the results complete.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from power_data import SERIES, series, write_prices
from test_power_simulate_cli import simulate_args


@pytest.fixture
def inputs(isolated_home: Path, curve_file: Path) -> dict[str, Path]:
    """A prices, curve and policy file in the current directory (the isolated home), so `./name` spells them."""
    prices = write_prices(isolated_home / "prices.csv", series(SERIES["daily_sine"](48)))
    curve = isolated_home / "curves.csv"
    curve.write_text(curve_file.read_text())
    policy = isolated_home / "policy.yaml"
    policy.write_text("policy: optimize\nmax_throughput_loss: 0.05\n")
    return {"--prices": prices, "--curve": curve, "--policy": policy}


def run(cli, inputs: dict[str, Path], schedule_out: str, *extra: str):
    args = simulate_args(inputs["--prices"], inputs["--curve"], "--price-visibility", "day-ahead", *extra)
    return cli(*args, "--policy", str(inputs["--policy"]), "--schedule-out", schedule_out)


@pytest.mark.parametrize("option", ["--prices", "--curve", "--policy"])
@pytest.mark.parametrize("spelling", ["same", "dot-slash", "symlink"])
def test_schedule_out_naming_an_input_is_refused_and_the_input_is_kept(cli, inputs, option, spelling):
    target = inputs[option]
    before = target.read_bytes()
    if spelling == "same":
        given = str(target)
    elif spelling == "dot-slash":
        given = f"./{target.name}"
    else:
        link = target.with_name("link-" + target.name)
        link.symlink_to(target)
        given = str(link)
    result = run(cli, inputs, given)
    assert result.exit_code == 2, result.stderr
    assert (
        f"factoryctl: --schedule-out {Path(given)} is the {option} file itself; writing it would destroy"
        in result.stderr
    )
    assert "hint: give --schedule-out another file name." in result.stderr
    assert result.stdout == ""
    assert target.read_bytes() == before


def test_schedule_out_dash_writes_the_schedule_to_stdout_and_the_results_to_stderr(cli, inputs):
    result = run(cli, inputs, "-", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert not Path("-").exists()  # the isolated home is the current directory
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 48
    assert list(rows[0]) == ["timestamp_utc", "price_per_mwh", "power_limit_frac"]
    assert json.loads(result.stderr)["intervals"] == 48


def test_a_full_disk_prints_the_results_first_and_exits_1(cli, inputs):
    result = run(cli, inputs, "/dev/full", "-o", "json")
    assert result.exit_code == 1, result.stderr
    assert result.json()["intervals"] == 48  # the results were printed, whole
    assert "factoryctl: cannot write the schedule to /dev/full: No space left on device." in result.stderr
    assert "hint: the results above are complete" in result.stderr


def test_a_missing_directory_fails_before_the_replay_and_a_refusal_leaves_no_file(cli, inputs, isolated_home):
    missing = run(cli, inputs, str(isolated_home / "no" / "s.csv"))
    assert missing.exit_code == 2
    assert "check that its directory exists and is writable" in missing.stderr
    assert missing.stdout == ""
    inputs["--policy"].write_text("policy: optimize\nmax_throughput_loss: 0.05\n")
    one_point = isolated_home / "one.csv"
    one_point.write_text("gpu,workload,pl_frac,throughput_rel,power_rel\ntgpu,bench/toy,0.5,0.8,0.6\n")
    inputs["--curve"] = one_point
    refused = run(cli, inputs, "out.csv")  # the replay refuses this curve after the schedule file was opened
    assert refused.exit_code == 2
    assert not (isolated_home / "out.csv").exists()


def test_a_failed_run_leaves_an_existing_schedule_file_as_it_was(cli, tmp_path):
    """The file was opened (emptied) before the replay: a run that then failed left it at 0 bytes. It is written
    beside and renamed over only once complete, keeping its permissions."""
    from curve_rows import HEADER, simulate

    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0, 30.0]))
    unreachable = tmp_path / "c.csv"
    unreachable.write_text(HEADER + "x,w,0.5,0.8,0.6\nx,w,1.0,0.9,1.0\n")  # never 0.95 of full throughput
    schedule = tmp_path / "schedule.csv"
    schedule.write_text("the last good schedule\n")
    schedule.chmod(0o640)
    failed = cli(*simulate(prices, unreachable, "--schedule-out", str(schedule)))
    assert failed.exit_code == 2, failed.stderr
    assert schedule.read_text() == "the last good schedule\n"
    reachable = tmp_path / "ok.csv"
    reachable.write_text(HEADER + "x,w,0.5,0.8,0.6\nx,w,1.0,1.0,1.0\n")
    done = cli(*simulate(prices, reachable, "--schedule-out", str(schedule)))
    assert done.exit_code == 0, done.stderr
    assert schedule.read_text().startswith("timestamp_utc,price_per_mwh,power_limit_frac\n")
    assert schedule.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.csv", "ok.csv", "p.csv", "schedule.csv"]  # no leftovers
