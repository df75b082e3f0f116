"""`power simulate` and the price loader, as a black-box review (session 11) found them wanting.

-q drops the null-saving note but keeps the stale warning; a one-row file in realtime is stale for want of any
earlier price (not for unknown prices); D = 0 reports bound = blind and a null gap; price times are whole seconds
from 1970 on, written with four-digit years; column names are read case-insensitively; a value out of range is
echoed exactly, never rounded into a contradiction (`1e+06 ... at most 1e+06`); the table escapes control
characters of the curve file's names.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from curve_rows import assert_curve_row_refused
from power_data import SERIES, series, write_prices
from test_power_simulate_cli import simulate_args

from factoryctl.errors import UsageError


def _prices(tmp_path, text: str):
    path = tmp_path / "p.csv"
    path.write_text(text)
    return path


def test_quiet_drops_the_null_saving_note_but_keeps_the_stale_warning(cli, tmp_path, curve_file):
    zeros = write_prices(tmp_path / "zeros.csv", series([0.0] * 4))
    args = simulate_args(zeros, curve_file, "--price-visibility", "day-ahead", "-o", "json")
    loud = cli(*args)
    assert loud.exit_code == 0, loud.stderr
    assert "note: the baseline bill is 0" in loud.stderr
    quiet = cli("-q", *args)
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.json()["saving_pct"] is None
    unknown = write_prices(tmp_path / "nan.csv", series([None] * 4))
    warned = cli("-q", *simulate_args(unknown, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert warned.exit_code == 0
    assert "factoryctl: 4 of 4 intervals were stale" in warned.stderr  # a warning: the results are the fail-safe's
    assert "note:" not in warned.stderr


def test_a_one_row_file_in_realtime_blames_the_missing_earlier_price_not_unknown_prices(cli, tmp_path, curve_file):
    one = write_prices(tmp_path / "one.csv", series([10.0]))
    result = cli(*simulate_args(one, curve_file, "--price-visibility", "realtime", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert (document["stale_intervals"], document["nan_prices"], document["missing_intervals"]) == (1, 0, 0)
    assert result.stderr == (
        "factoryctl: 1 of 1 intervals were stale, so the policy ran at its fail-safe limit there: the file has one"
        " row, and in realtime no price is published before an interval starts, so the first interval never has a"
        " known price.\nhint: give the prices of the intervals before it too, or use --price-visibility day-ahead.\n"
    )


def test_no_loss_budget_reports_the_bound_equal_to_blind_and_no_gap(cli, tmp_path, curve_file):
    prices = write_prices(tmp_path / "p.csv", series(SERIES["daily_sine"](96)))  # the LP lands 2e-12 off blind
    args = simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json")
    args[args.index("0.05")] = "0"
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["bound_saving_pct"] == document["blind_saving_pct"]
    assert document["gap_closed_frac"] is None


def test_the_simulator_snaps_a_bound_within_float_noise_of_blind(monkeypatch, toy):
    from factoryctl.power import simulator
    from factoryctl.power.policy.config import OptimizePolicy

    monkeypatch.setattr(simulator, "blind_saving_pct", lambda *_: 0.0)
    monkeypatch.setattr(simulator, "bound_saving_pct", lambda *_: 7.124398383873956e-10)
    curve, gpu = toy
    result = simulator.simulate(series([10.0, 20.0]), curve, gpu, OptimizePolicy(0.05), "day-ahead", 0.05)
    assert (result.blind_saving_pct, result.bound_saving_pct, result.gap_fraction) == (0.0, 0.0, None)


@pytest.mark.parametrize(
    ("stamp", "message"),
    [
        ("2023-01-01T00:00:00.5Z", "timestamp_utc is '2023-01-01T00:00:00.5Z', which is not on a whole second"),
        ("20230101T000000.25Z", "timestamp_utc is '20230101T000000.25Z', which is not on a whole second"),
        (
            "0001-01-01T00:00:00Z",
            "timestamp_utc is '0001-01-01T00:00:00Z', before 1970: no market published that price",
        ),
        (
            "1969-12-31T23:00:00Z",
            "timestamp_utc is '1969-12-31T23:00:00Z', before 1970: no market published that price",
        ),
    ],
)
def test_a_price_time_off_the_second_or_before_1970_is_refused_at_its_line(tmp_path, stamp, message):
    from factoryctl.power.sources import read_price_csv

    path = _prices(tmp_path, f"timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,1\n{stamp},2\n")
    with pytest.raises(UsageError) as refused:
        read_price_csv(path)
    assert refused.value.message == f"{path}:3: bad price row: {message}"


def test_a_whole_second_written_with_zero_fraction_is_accepted(tmp_path):
    from factoryctl.power.sources import read_price_csv

    path = _prices(tmp_path, 'timestamp_utc,price_per_mwh\n1970-01-01T00:00:00.000Z,1\n"2023-01-01T00:00:00,000Z",2\n')
    assert [p.timestamp_s for p in read_price_csv(path).points] == [0, 1672531200]


def test_times_are_written_with_four_digit_years():
    from factoryctl.model.power import iso_utc_seconds

    assert iso_utc_seconds(-62135596800) == "0001-01-01T00:00:00Z"
    assert iso_utc_seconds(-30610310400) == "0999-12-31T00:00:00Z"
    assert iso_utc_seconds(1672531200) == "2023-01-01T00:00:00Z"


def test_price_and_curve_headers_are_read_case_insensitively(cli, tmp_path, curve_file):
    prices = _prices(tmp_path, "Timestamp_UTC, Price_per_MWh\n2023-01-01T00:00:00Z,10\n2023-01-01T01:00:00Z,20\n")
    curve = tmp_path / "curve.csv"
    lines = curve_file.read_text().splitlines(keepends=True)
    curve.write_text(lines[0].upper() + "".join(lines[1:]))
    result = cli(*simulate_args(prices, curve, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    assert result.json()["intervals"] == 2


def test_a_price_column_named_twice_in_two_cases_is_refused(tmp_path):
    from factoryctl.power.sources import read_price_csv

    path = _prices(tmp_path, "timestamp_utc,Price_per_mwh,price_per_MWh\n2023-01-01T00:00:00Z,1,2\n")
    with pytest.raises(UsageError) as refused:
        read_price_csv(path)
    assert refused.value.message == f"{path}:1: the prices file's header names column price_per_mwh twice"
    assert refused.value.hint == "give each column once (names are read case-insensitively)."


def test_a_price_out_of_range_is_echoed_exactly(tmp_path):
    from factoryctl.power.sources import read_price_csv

    path = _prices(tmp_path, "timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,1000001\n")
    with pytest.raises(UsageError) as refused:
        read_price_csv(path)
    assert refused.value.message == (
        f"{path}:2: bad price row: price 1000001 is out of range: at most 1,000,000 per MWh either way"
    )


def test_a_plugins_price_out_of_range_is_echoed_exactly():
    from factoryctl.model.power import PricePoint
    from factoryctl.power.plugins import PriceSourceError, checked_points

    with pytest.raises(PriceSourceError, match=r"price_per_mwh 1000000\.5 is beyond ±1,000,000 per MWh"):
        checked_points([PricePoint(0, 1000000.5)], "plugin x")


def test_a_curve_value_just_out_of_range_is_echoed_exactly(cli, tmp_path):
    rows = "x,w,0.5,0.8,0.6\nx,w,1.0,2.0000001,1.0\n"
    assert_curve_row_refused(cli, tmp_path, rows, ":3: bad curve row: throughput_rel 2.0000001 is outside (0, 2]")


def test_an_unreachable_loss_budget_names_the_curves_highest_exactly():
    from factoryctl.model.power import CurvePoint
    from factoryctl.power.curve import PowerCurve
    from factoryctl.power.simulator import check_reachable

    curve = PowerCurve.from_points([CurvePoint(0.5, 0.8, 0.6), CurvePoint(1.0, 0.9499999, 1.0)], name="x w")
    with pytest.raises(UsageError) as refused:
        check_reachable(curve, 0.05)
    assert "never reaches throughput_rel 0.95 (1 - D for D = 0.05): its highest is 0.9499999," in refused.value.message


def test_watts_just_outside_a_gpus_range_are_echoed_exactly():
    from factoryctl.power.limit_checks import check_range

    gpu = SimpleNamespace(index=0, power_limit_min_w=100.0, power_limit_max_w=450.0)
    with pytest.raises(UsageError) as refused:
        check_range([SimpleNamespace(node="n1", gpus=[gpu])], None, 450.0000001)  # type: ignore[list-item]
    assert refused.value.message.startswith("450.0000001 W is outside n1/0's power-limit range of 100-450 W;")


def test_power_simulate_escapes_the_curve_files_names_in_its_table(cli, tmp_path):
    curve = tmp_path / "c.csv"
    curve.write_text('gpu,workload,pl_frac,throughput_rel,power_rel\n"x\x1b]0;t",w,0.5,0.8,0.6\n"x\x1b]0;t",w,1,1,1\n')
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    result = cli(
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "x\x1b]0;t", "--workload", "w",
        "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "x\\x1b]0;t" in result.stdout
    assert "\x1b" not in result.stdout
