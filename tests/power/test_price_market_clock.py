"""A change of resolution at a file's edge is judged on the market's own clock, the offset its times carry.

An hourly last row after 15-minute rows is a change of resolution when it starts on the hour; in a +05:30 file
(India) the hours start at :30 UTC, so judging the boundary in UTC called `...00:45, 01:00, 02:00` (local time)
a gap and `...01:15, 01:30, 02:30` a change of resolution: the reverse of the market's reading. Whole-hour
offsets (+01:00) move no boundary and read as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factoryctl.power.intervals import row_intervals
from factoryctl.power.sources import CsvPriceSource, parse_timestamp

QUARTER = 900
HOUR = 3600


def write_local(path: Path, offset: str, clock: list[str]) -> Path:
    """A prices file on 2025-10-01 with a row at each local `clock` time (HH:MM) written with `offset`."""
    rows = [f"2025-10-01T{hhmm}:00{offset},{40 + i}" for i, hhmm in enumerate(clock)]
    path.write_text("timestamp_utc,price_per_mwh\n" + "\n".join(rows) + "\n")
    return path


def history(cli: Any, prices: Path, since: str) -> list[str]:
    """The timestamp_utc of each row `price history -o json` lists from `since` on."""
    result = cli("price", "history", "--prices", str(prices), "--since", since, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return [item["timestamp_utc"] for item in result.json()["items"]]


def stale_at(cli: Any, prices: Path, moment: str) -> bool:
    """Whether `price show --at moment` calls the row it shows stale (a gap, or the file ended)."""
    result = cli("price", "show", "--prices", str(prices), "--at", moment, "-o", "json")
    assert result.exit_code == 0, result.stderr
    return bool(result.json()["stale"])


QUARTERS_THEN_HOURLY = ["00:00", "00:15", "00:30", "00:45", "01:00", "02:00"]


def test_a_half_hour_offset_file_that_ends_hourly_on_its_own_hours_has_no_gap(cli, tmp_path):
    prices = write_local(tmp_path / "in.csv", "+05:30", QUARTERS_THEN_HOURLY)
    assert not stale_at(cli, prices, "2025-10-01T01:30:00+05:30")  # 20:00 UTC: the 01:00 local row's hour
    assert history(cli, prices, "2025-10-01T01:30:00+05:30") == ["2025-09-30T19:30:00Z", "2025-09-30T20:30:00Z"]
    assert not stale_at(cli, prices, "2025-10-01T02:59:00+05:30")  # the last row lasts its run's hour


def test_the_csv_source_configured_in_factory_yaml_keeps_the_clock_too(cli, tmp_path):
    write_local(tmp_path / "in.csv", "+05:30", QUARTERS_THEN_HOURLY)
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n1: {transport: local}\npower:\n  price_source: csv\n  prices: in.csv\n")
    result = cli("-c", str(config), "price", "show", "--at", "2025-10-01T01:30:00+05:30", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert (result.json()["timestamp_utc"], result.json()["stale"]) == ("2025-09-30T19:30:00Z", False)
    listed = cli("-c", str(config), "price", "history", "--since", "2025-10-01T01:30:00+05:30", "-o", "json")
    assert [i["timestamp_utc"] for i in listed.json()["items"]] == ["2025-09-30T19:30:00Z", "2025-09-30T20:30:00Z"]


def test_an_hourly_edge_off_the_markets_hour_is_a_gap_even_on_a_utc_hour(cli, tmp_path):
    """`...01:15, 01:30, 02:30` local: 01:30 +05:30 is 20:00 UTC, on a UTC hour but not on India's."""
    prices = write_local(tmp_path / "off.csv", "+05:30", ["01:00", "01:15", "01:30", "02:30"])
    assert stale_at(cli, prices, "2025-10-01T01:50:00+05:30")
    assert history(cli, prices, "2025-10-01T01:50:00+05:30") == ["2025-09-30T21:00:00Z"]


def test_whole_hour_offsets_and_utc_keep_their_reading(cli, tmp_path):
    for name, offset in (("utc.csv", "Z"), ("cet.csv", "+01:00")):
        prices = write_local(tmp_path / name, offset, QUARTERS_THEN_HOURLY)
        one_thirty = f"2025-10-01T01:30:00{offset}"
        assert not stale_at(cli, prices, one_thirty), offset
        assert len(history(cli, prices, one_thirty)) == 2, offset
        gap = write_local(tmp_path / f"gap-{name}", offset, ["00:00", "00:15", "00:30", "00:45", "01:45"])
        assert stale_at(cli, gap, one_thirty), offset  # three quarter hours missing, as before


def test_the_csv_source_keeps_the_offset_its_last_row_is_written_in(tmp_path):
    source = CsvPriceSource(write_local(tmp_path / "in.csv", "+05:30", ["00:00", "00:15"]))
    source.fetch()
    assert source.utc_offset_s == 5 * HOUR + 30 * 60
    source.path = write_local(tmp_path / "utc.csv", "Z", ["00:00", "00:15"])
    source.fetch()
    assert source.utc_offset_s == 0
    source.path = write_local(tmp_path / "naive.csv", "", ["00:00", "00:15"])  # no offset: read as UTC
    source.fetch()
    assert source.utc_offset_s == 0


def test_row_intervals_judges_edges_on_the_clock_it_is_given():
    start = parse_timestamp("2025-10-01T00:00:00+05:30")  # 18:30 UTC
    times = [start + i * QUARTER for i in range(5)] + [start + 2 * HOUR]
    assert row_intervals(times, 5 * HOUR + 30 * 60).durations_s[-2:] == (HOUR, HOUR)
    assert row_intervals(times, 5 * HOUR + 30 * 60).gaps == ()
    utc = row_intervals(times)  # the same times on UTC boundaries: 19:30 UTC is off the hour
    assert utc.durations_s[-2:] == (QUARTER, QUARTER)
    assert utc.missing_intervals == 3
    west = [t + 9 * HOUR for t in times]  # -03:30 (Newfoundland): the same local clock, a negative offset
    assert row_intervals(west, -(3 * HOUR + 30 * 60)).gaps == ()


def test_power_simulate_reads_the_half_hour_offset_file_on_its_own_clock_too(cli, tmp_path, curve_file):
    prices = write_local(tmp_path / "in.csv", "+05:30", QUARTERS_THEN_HOURLY)
    result = cli(
        "power", "simulate", "--prices", str(prices), "--curve", str(curve_file), "--gpu", "tgpu",
        "--workload", "bench/toy", "--price-visibility", "realtime",
        "--max-throughput-loss", "0.05", "-o", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert (result.json()["missing_intervals"], result.json()["intervals"]) == (0, 6)
