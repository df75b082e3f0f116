"""The CSV price source and curve files: formats, unknown prices, errors with file:line, the entry point."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from factoryctl.errors import UsageError
from factoryctl.power.curve_file import load_curve
from factoryctl.power.sources import CsvPriceSource, parse_price, parse_timestamp


def test_csv_source_reads_unknown_prices_as_none_and_filters_by_time(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text(
        "timestamp_utc,price_per_mwh,zone\n"
        "2023-01-01T00:00:00+00:00,-12.5,FR\n"
        "2023-01-01T01:00:00Z,NaN,FR\n"
        "2023-01-01T02:00:00Z,,FR\n"
        "2023-01-01T03:00:00,99999.0,FR\n"
    )
    points = CsvPriceSource(path).fetch()
    assert [p.price_per_mwh for p in points] == [-12.5, None, None, 99999.0]
    start = parse_timestamp("2023-01-01T01:00:00Z")
    assert [p.timestamp_s for p in CsvPriceSource(path).fetch(start, start + 7200)] == [start, start + 3600]


def test_timestamps_with_offsets_are_converted_to_utc():
    assert parse_timestamp("2023-01-01T01:00:00+01:00") == parse_timestamp("2023-01-01T00:00:00Z")


def test_infinite_prices_are_refused():
    with pytest.raises(ValueError, match="infinite"):
        parse_price("inf")
    assert parse_price(" null ") is None


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("time,price\n")
    with pytest.raises(UsageError, match="timestamp_utc, price_per_mwh"):
        CsvPriceSource(path).fetch()


def test_curve_names_match_case_insensitively_and_by_half(curve_file):
    curve, gpu = load_curve(curve_file, "tgpu", "BENCH")
    assert curve.name == "TGPU bench/toy"
    assert gpu.max_w == 400
    assert gpu.min_w == pytest.approx(100)
    with pytest.raises(UsageError, match="ambiguous"):
        load_curve(curve_file, "tgpu", "toy")


def test_curve_file_errors(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("gpu,workload,pl_frac\n")
    with pytest.raises(UsageError, match="lacks column"):
        load_curve(path, "x", "y")
    path.write_text("gpu,workload,pl_frac,throughput_rel,power_rel\nx,y,half,1,1\n")
    with pytest.raises(UsageError, match=r"c\.csv:2"):
        load_curve(path, "x", "y")


def test_csv_source_is_registered_as_a_plugin():
    found = {ep.name: ep.value for ep in entry_points(group="factoryctl.price_sources.v1")}
    assert found.get("csv") == "factoryctl.power.sources:CsvPriceSource"


def test_pure_power_core_loads_no_io_or_ui_library():
    code = (
        "import sys, factoryctl.power.policy.engine, factoryctl.power.simulator, factoryctl.power.curve;"
        "bad = {'paramiko', 'pynvml', 'textual', 'rich', 'typer'} & set(sys.modules);"
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
