"""Price files, review 22: a gap before `--until`, the local-time hint, rows near year 9999, bad offsets, kWh units.

`price history --until T` (no `--since`) read only the rows before T, so a gap before T looked like the end of the
feed; the hint to write DST offsets was given for any repeat or step back in a file without offsets (a June
duplicate at 11:00, a row a day back); a row in the last hour of year 9999 crashed `price history` (its end, year
10000, could not be written); an offset of +25:00 was refused in Python's words; and a file in per-kWh units was
taken as per-MWh prices without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from power_data import curve_csv_text

from factoryctl.model.power import iso_utc_seconds

HEADER = "timestamp_utc,price_per_mwh\n"


def write(tmp_path: Path, name: str, rows: list[str]) -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "".join(f"{row}\n" for row in rows))
    return path


def gap_file(tmp_path: Path) -> Path:
    """Hourly rows 06:00 to 10:00Z, nothing until 20:00, then 20:00 to 22:00Z."""
    hours = [6, 7, 8, 9, 10, 20, 21, 22]
    return write(tmp_path, "gap.csv", [f"2023-10-29T{h:02d}:00:00Z,{i + 1}" for i, h in enumerate(hours)])


def test_until_alone_judges_the_end_on_the_whole_file_as_since_does(cli: Any, tmp_path: Path) -> None:
    prices = gap_file(tmp_path)
    alone = cli("price", "history", "--prices", str(prices), "--until", "2023-10-29T15:00Z", "-o", "csv")
    both = cli(
        "price", "history", "--prices", str(prices), "--since", "2023-10-29T06:00Z", "--until", "2023-10-29T15:00Z",
        "-o", "csv",
    )  # fmt: skip
    assert (alone.exit_code, alone.stderr) == (0, "")
    assert (both.exit_code, both.stderr) == (0, "")
    assert alone.stdout == both.stdout
    assert alone.stdout.count("2023-10-29T") == 5


def test_until_alone_past_the_file_still_warns_that_it_ended(cli: Any, tmp_path: Path) -> None:
    result = cli("price", "history", "--prices", str(gap_file(tmp_path)), "--until", "2023-10-30T00:00Z")
    assert result.exit_code == 0
    assert "warning: the prices in" in result.stderr
    assert "end at 2023-10-29T23:00:00Z, before 2023-10-30T00:00:00Z" in result.stderr


def refused(cli: Any, prices: Path) -> str:
    result = cli("price", "history", "--prices", str(prices))
    assert result.exit_code == 2, result.stdout
    return str(result.stderr)


def test_a_repeat_at_night_without_offsets_gets_the_local_time_hint(cli: Any, tmp_path: Path) -> None:
    rows = ["2023-10-29T01:00:00,1", "2023-10-29T02:00:00,2", "2023-10-29T02:15:00,3", "2023-10-29T02:00:00,4"]
    assert "repeats an hour when clocks go back" in refused(cli, write(tmp_path, "p.csv", rows))
    hourly = ["2023-11-05 00:00,1", "2023-11-05 01:00,2", "2023-11-05 01:00,3"]  # US: 01:00 twice
    assert "repeats an hour when clocks go back" in refused(cli, write(tmp_path, "us.csv", hourly))


def test_other_repeats_and_steps_back_get_the_time_order_hint(cli: Any, tmp_path: Path) -> None:
    for name, rows in {
        "unsorted.csv": ["2023-06-15T10:00:00,1", "2023-06-14T10:00:00,2"],
        "dup.csv": ["2023-06-15 10:00,1", "2023-06-15 11:00,2", "2023-06-15 11:00,2"],
        "back2h.csv": ["2023-10-29T03:00:00,1", "2023-10-29T01:00:00,2"],
    }.items():
        stderr = refused(cli, write(tmp_path, name, rows))
        assert f"{name}:{len(rows) + 1}: bad price row:" in stderr
        assert "repeats or goes back; price timestamps must be strictly increasing" in stderr
        assert "clocks go back" not in stderr
        assert "hint: a prices file has the header timestamp_utc,price_per_mwh" in stderr


def test_iso_utc_seconds_writes_times_past_year_9999() -> None:
    assert iso_utc_seconds(253402300799) == "9999-12-31T23:59:59Z"
    assert iso_utc_seconds(253402300800) == "+10000-01-01T00:00:00Z"
    assert iso_utc_seconds(1_700_006_400) == "2023-11-15T00:00:00Z"
    assert iso_utc_seconds(0) == "1970-01-01T00:00:00Z"


def test_a_last_row_in_year_9999_is_no_crash(cli: Any, tmp_path: Path) -> None:
    far = write(tmp_path, "far.csv", ["9999-12-31T23:00:00Z,5"])
    history = cli("price", "history", "--prices", str(far), "--until", "2023-01-01T00:00Z")
    assert history.exit_code == 0, history.stderr
    assert history.stderr == (
        f"factoryctl: note: the prices in {far} run from 9999-12-31T23:00:00Z to +10000-01-01T00:00:00Z, so nothing"
        " before --until 2023-01-01T00:00:00Z is listed.\n"
    )
    show = cli("price", "show", "--prices", str(far), "--at", "9999-12-31T23:59:59Z", "-o", "json")
    assert show.exit_code == 0, show.stderr
    assert (show.json()["timestamp_utc"], show.json()["stale"]) == ("9999-12-31T23:00:00Z", False)


def simulate(cli: Any, tmp_path: Path, prices: Path, *extra: str) -> Any:
    curve = tmp_path / "curves.csv"
    curve.write_text(curve_csv_text())
    return cli(
        *extra, "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "tgpu", "--workload",
        "bench/toy", "--max-throughput-loss", "0.05", "--price-visibility", "realtime", "-o", "json",
    )  # fmt: skip


def test_a_simulation_over_the_last_hours_of_year_9999_runs(cli: Any, tmp_path: Path) -> None:
    far = write(tmp_path, "far.csv", [f"9999-12-31T{h}:00:00Z,{h}" for h in (21, 22, 23)])
    result = simulate(cli, tmp_path, far)
    assert result.exit_code == 0, result.stderr
    assert "unexpected error" not in result.stderr


def test_an_offset_out_of_range_is_one_sentence(cli: Any, tmp_path: Path) -> None:
    prices = write(tmp_path, "p.csv", ["2023-01-01T00:00:00+25:00,3"])
    stderr = refused(cli, prices)
    assert stderr == (
        f"factoryctl: {prices}:2: bad price row: timestamp_utc is '2023-01-01T00:00:00+25:00', whose UTC offset"
        " +25:00 is out of range (an offset is less than 24 hours either way).\n"
        "hint: write the start of each interval as e.g. 2023-01-01T00:00:00Z.\n"
    )


def kwh_rows(count: int, scale: float = 1.0) -> list[str]:
    return [f"2023-01-01T{h % 24:02d}:00:00Z,{scale * (0.01 * h - 0.05):.4f}" for h in range(count)]


KWH_WARNING = "warning: every price in"
DAY = ("--until", "2023-01-02T00:00Z")


def test_a_file_in_per_kwh_units_is_used_with_one_warning(cli: Any, tmp_path: Path) -> None:
    prices = write(tmp_path, "kwh.csv", kwh_rows(24))
    result = cli("-q", "price", "history", "--prices", str(prices), "--since", "2023-01-01T00:00Z", *DAY, "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert len(result.json()["items"]) == 24
    assert result.stderr == (
        f"factoryctl: warning: every price in {prices} is below 1 per MWh either way (at most 0.18): they"
        " look like prices per kWh.\n"
        "hint: prices are per MWh: multiply them by 1000 (0.05 per kWh is 50 per MWh).\n"
    )
    show = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T05:30Z")
    assert (show.exit_code, show.stderr.count(KWH_WARNING)) == (0, 1)
    piped = cli("price", "history", "--prices", "-", *DAY, stdin=prices.read_text())
    assert (piped.exit_code, piped.stderr.count("warning: every price in stdin is below 1 per MWh")) == (0, 1)
    replayed = simulate(cli, tmp_path, prices, "-q")
    assert (replayed.exit_code, replayed.stderr.count(KWH_WARNING)) == (0, 1)


def test_per_mwh_files_and_short_files_get_no_unit_warning(cli: Any, tmp_path: Path) -> None:
    for name, rows in {
        "short.csv": kwh_rows(23),
        "mwh.csv": kwh_rows(24, scale=1000.0),
        "zeros.csv": [f"2023-01-01T{h:02d}:00:00Z,0" for h in range(24)],
        "one_real.csv": [*kwh_rows(23), "2023-01-01T23:00:00Z,1.5"],
    }.items():
        result = cli("price", "history", "--prices", str(write(tmp_path, name, rows)))
        assert (result.exit_code, result.stderr) == (0, ""), name


def test_a_configured_prices_file_in_per_kwh_units_is_warned_of_too(cli: Any, tmp_path: Path) -> None:
    write(tmp_path, "kwh.csv", kwh_rows(24))
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n1: {transport: local}\npower:\n  price_source: csv\n  prices: kwh.csv\n")
    result = cli("-c", str(config), "price", "history", *DAY)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count(f"warning: every price in {tmp_path / 'kwh.csv'} is below 1 per MWh") == 1
