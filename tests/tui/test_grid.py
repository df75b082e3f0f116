"""The header's grid price: from the configured CSV price source, never guessed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.live.grid import GridPrice

HOUR = 3600


def config_with_prices(tmp_path: Path, rows: list[tuple[int, str]], source: str = "csv"):
    prices = tmp_path / "prices.csv"
    prices.write_text("timestamp_utc,price_per_mwh\n" + "".join(f"{_iso(t)},{p}\n" for t, p in rows))
    yaml = f"name: lab\nnodes:\n  n1: {{transport: local}}\npower:\n  price_source: {source}\n  prices: prices.csv\n"
    path = tmp_path / "factory.yaml"
    path.write_text(yaml)
    return parse_config(yaml, path, tmp_path / "state")


def _iso(t: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def test_price_now_trend_and_cost(tmp_path: Path) -> None:
    start = int(time.time()) // HOUR * HOUR
    grid = GridPrice(config_with_prices(tmp_path, [(start - HOUR, "50"), (start, "80"), (start + HOUR, "-5.5")]))
    price, cost = grid.now(start + 60, power_kw=2000.0)
    assert price is not None
    assert price.price_per_mwh == 80.0
    assert price.trend == pytest.approx(-85.5)
    assert cost == pytest.approx(160.0)  # 2 MW x 80 per MWh


def test_a_file_that_ends_before_now_or_starts_after_it_gives_no_price(tmp_path: Path) -> None:
    start = int(time.time()) // HOUR * HOUR
    grid = GridPrice(config_with_prices(tmp_path, [(start - 5 * HOUR, "50"), (start - 4 * HOUR, "60")]))
    assert grid.now(start + 60, 10.0) == (None, None)
    assert grid.now(start - 10 * HOUR, 10.0) == (None, None)


def test_unpublished_price_no_source_and_unknown_source(tmp_path: Path) -> None:
    start = int(time.time()) // HOUR * HOUR
    grid = GridPrice(config_with_prices(tmp_path, [(start, "")]))
    assert grid.now(start + 1, 10.0) == (None, None)
    other = GridPrice(config_with_prices(tmp_path / "..", [(start, "70")], source="entsoe"))
    assert other.now(start + 1, 10.0) == (None, None)  # no price is guessed; the header says why
    assert other.error is not None
    assert "no price source `entsoe` is installed" in other.error
    bare = parse_config("name: lab\nnodes:\n  n1: {transport: local}\n")
    assert GridPrice(bare).now(start, 10.0) == (None, None)


def test_an_updated_file_is_read_again(tmp_path: Path) -> None:
    start = int(time.time()) // HOUR * HOUR
    config = config_with_prices(tmp_path, [(start, "80")])
    grid = GridPrice(config)
    assert grid.now(start + 1, 1.0)[0].price_per_mwh == 80.0
    (tmp_path / "prices.csv").write_text(f"timestamp_utc,price_per_mwh\n{_iso(start)},95.25\n")
    assert grid.now(start + 1, 1.0)[0].price_per_mwh == 95.25


def test_outlook_lists_the_published_prices_from_now(tmp_path: Path) -> None:
    start = int(time.time()) // HOUR * HOUR
    rows = [(start - HOUR, "10"), (start, "20"), (start + HOUR, "30"), (start + 2 * HOUR, "")]
    grid = GridPrice(config_with_prices(tmp_path, rows))
    assert grid.outlook(start + 5) == (20.0, 30.0, None)
    assert grid.outlook(start + 5, hours=2) == (20.0, 30.0)
    assert grid.outlook(start - 10 * HOUR) == ()


def test_the_outlook_is_one_price_an_hour_whatever_the_interval(tmp_path: Path) -> None:
    """15-minute rows: "price next N h" counts hours, not rows (it said 17 h of a file covering about 5)."""
    start = int(time.time()) // HOUR * HOUR
    rows = [(start + quarter * 900, str(10 + quarter)) for quarter in range(8)]  # two hours of quarters
    grid = GridPrice(config_with_prices(tmp_path, rows))
    assert grid.outlook(start + 5) == (10.0, 14.0)


def test_the_interval_is_the_median_spacing_as_price_show_takes_it(tmp_path: Path) -> None:
    day = int(time.time()) // 86400 * 86400 - 86400
    rows = [(day, "10"), (day + 900, "20"), (day + HOUR, "40"), (day + 2 * HOUR, "60"), (day + 3 * HOUR, "80")]
    grid = GridPrice(config_with_prices(tmp_path, rows))
    price, _ = grid.now(day + 3 * HOUR + 20 * 60, 1.0)  # 03:20, inside the last hour-long interval
    assert price is not None
    assert price.price_per_mwh == 80.0
    assert grid.now(day + 4 * HOUR + 1, 1.0) == (None, None)  # past it


def test_a_bad_file_gives_no_price_and_its_error_and_is_parsed_once_until_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from factoryctl.power import sources

    start = int(time.time()) // HOUR * HOUR
    config = config_with_prices(tmp_path, [(start, "80")])
    grid = GridPrice(config)
    assert grid.now(start + 1, 1.0)[0] is not None
    assert grid.error is None
    (tmp_path / "prices.csv").write_text("timestamp_utc,price_per_mwh\nnot a time,80\n")
    reads: list[object] = []
    real = sources.read_price_csv
    monkeypatch.setattr(sources, "read_price_csv", lambda path, text=None: reads.append(path) or real(path, text))
    assert grid.now(start + 1, 1.0) == (None, None)
    assert grid.error is not None
    assert "prices.csv" in grid.error
    assert grid.outlook(start + 1) == ()
    assert len(reads) == 1  # not parsed again on every refresh
    (tmp_path / "prices.csv").write_text(f"timestamp_utc,price_per_mwh\n{_iso(start)},95\n")
    assert grid.now(start + 1, 1.0)[0].price_per_mwh == 95.0
    assert grid.error is None


def test_the_snapshot_carries_the_prices_file_error(tmp_path: Path) -> None:
    from factoryctl.live.history import RecentHistory
    from factoryctl.live.services_base import assemble_snapshot

    config = config_with_prices(tmp_path, [])
    (tmp_path / "prices.csv").write_text("timestamp_utc,price_per_mwh\nnot a time,80\n")
    snap = assemble_snapshot(config, [], time.time(), (), frozenset(), (), RecentHistory(1.0), GridPrice(config))
    assert snap.price is None
    assert snap.price_error is not None
    assert "prices.csv" in snap.price_error


def test_a_gap_in_the_file_gives_no_price_as_price_show_says(tmp_path: Path) -> None:
    """The header kept showing the price before a gap; `price show` calls that time a gap (stale), so does it now."""
    start = int(time.time()) // HOUR * HOUR
    rows = [(start - 3 * HOUR, "50"), (start - 2 * HOUR, "60"), (start + 2 * HOUR, "70"), (start + 3 * HOUR, "80")]
    grid = GridPrice(config_with_prices(tmp_path, rows))
    assert grid.now(start + 60, 10.0) == (None, None)
    price, _ = grid.now(start - 2 * HOUR + 60, 10.0)
    assert price is not None
    assert price.price_per_mwh == 60.0


def test_a_half_hour_offset_file_is_read_on_the_markets_clock(tmp_path: Path) -> None:
    """+05:30: quarter hours, then hourly rows at 01:00 and 02:00 local (19:30 and 20:30 UTC) hold for their hour."""
    clock = ["00:00", "00:15", "00:30", "00:45", "01:00", "02:00"]
    rows = "".join(f"2025-10-01T{hhmm}:00+05:30,{40 + i}\n" for i, hhmm in enumerate(clock))
    (tmp_path / "prices.csv").write_text("timestamp_utc,price_per_mwh\n" + rows)
    yaml = "name: lab\nnodes:\n  n1: {transport: local}\npower:\n  price_source: csv\n  prices: prices.csv\n"
    (tmp_path / "factory.yaml").write_text(yaml)
    grid = GridPrice(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"))
    one_thirty_local = 1759262400  # 2025-09-30T20:00:00Z
    price, _ = grid.now(one_thirty_local, 1.0)
    assert price is not None  # the 01:00 row holds for its hour: no gap after its first quarter
    assert price.price_per_mwh == 44.0
