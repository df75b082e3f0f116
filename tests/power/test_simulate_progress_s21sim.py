"""`power simulate` on a terminal says how far its replay is, as `sched simulate` does; `price history` says why
a range before the prices lists nothing.

A year of 15-minute prices replayed for seconds with nothing on the screen. The line is on a terminal only, never
under -q, and wiped before the results print. `price history --until` before the file's first row printed an
empty list, exit 0, with no word of where the prices are.
"""

from __future__ import annotations

import io
import sys

import pytest
from power_data import HOUR, SERIES, series, write_prices

from factoryctl.power.policy.config import OptimizePolicy
from factoryctl.power.policy.engine import EngineSetup
from factoryctl.power.simulator import replay


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _simulate_args(tmp_path, curve_file, *extra: str) -> list[str]:
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["daily_sine"](24 * 9)))
    return [
        *extra, "power", "simulate", "--prices", str(prices), "--curve", str(curve_file), "--gpu", "tgpu",
        "--workload", "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", "-o", "json",
    ]  # fmt: skip


def _on_a_terminal(monkeypatch: pytest.MonkeyPatch, args: list[str]) -> tuple[int, str, str]:
    """Run `factoryctl ARGS` in this process, its stderr a terminal; (exit status, stdout, stderr)."""
    from factoryctl.cli import progress
    from factoryctl.cli.app import run

    monkeypatch.setattr(progress, "DELAY_S", 0.0)  # as if the replay were long: no test waits on the clock
    out, err = io.StringIO(), Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = run(args)
    return code, out.getvalue(), err.getvalue()


def test_the_replay_tells_its_progress_about_a_hundred_times_in_order(toy):
    curve, gpu = toy
    points = series(SERIES["daily_sine"](24 * 30))
    heard: list[tuple[int, int]] = []
    setup = EngineSetup(OptimizePolicy(0.05), curve, gpu, len(points))
    told = replay(points, setup, "realtime", HOUR, progress=lambda done, total: heard.append((done, total)))
    assert 90 <= len(heard) <= 110
    assert all(total == len(points) for _, total in heard)
    done = [d for d, _ in heard]
    assert done == sorted(done)
    assert done[-1] < len(points)
    assert told == replay(points, setup, "realtime", HOUR)


def test_a_simulation_on_a_terminal_shows_its_replay_then_wipes_it(monkeypatch, tmp_path, curve_file):
    code, out, err = _on_a_terminal(monkeypatch, _simulate_args(tmp_path, curve_file))
    assert code == 0, err
    assert "\rreplaying optimize: " in err
    assert "% of 216 intervals" in err
    assert err.endswith("\r\x1b[K")  # wiped: the results print on a clean line
    assert '"intervals": 216' in out


def test_no_progress_under_quiet_or_off_a_terminal(cli, monkeypatch, tmp_path, curve_file):
    code, out, err = _on_a_terminal(monkeypatch, _simulate_args(tmp_path, curve_file, "-q"))
    assert (code, err) == (0, "")
    assert '"intervals": 216' in out
    result = cli(*_simulate_args(tmp_path, curve_file))  # stderr not a terminal (DELAY_S still 0)
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_history_ending_before_the_first_row_says_the_files_span(cli, tmp_path):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](48)))  # 2023-11-15 to 2023-11-17
    result = cli("price", "history", "--prices", str(prices), "--until", "2022-01-01", "-o", "json")
    assert result.exit_code == 0
    assert result.json() == {"schema_version": 1, "items": [], "errors": []}
    assert result.stderr == (
        f"factoryctl: note: the prices in {prices} run from 2023-11-15T00:00:00Z to 2023-11-17T00:00:00Z, so"
        " nothing before --until 2022-01-01T00:00:00Z is listed.\n"
    )
    ranged = cli("price", "history", "--prices", str(prices), "--since", "2021-06-01", "--until", "2023-11-15")
    assert ranged.exit_code == 0
    assert "run from 2023-11-15T00:00:00Z to 2023-11-17T00:00:00Z" in ranged.stderr
    quiet = cli("-q", "price", "history", "--prices", str(prices), "--until", "2022-01-01")
    assert (quiet.exit_code, quiet.stderr) == (0, "")


def test_a_history_reaching_into_the_file_has_no_note(cli, tmp_path):
    prices = write_prices(tmp_path / "prices.csv", series(SERIES["flat"](48)))
    result = cli("price", "history", "--prices", str(prices), "--until", "2023-11-15T01:00:00Z", "-o", "json")
    assert result.exit_code == 0
    assert len(result.json()["items"]) == 1
    assert result.stderr == ""
