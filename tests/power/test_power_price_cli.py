"""`factoryctl price show / history / sources` over the CSV source."""

from __future__ import annotations

import yaml
from power_data import series, write_prices


def test_history_lists_a_range_as_a_listing(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0, None, 30.0, 40.0]))
    result = cli("price", "history", "--prices", str(prices), "--since", "2023-11-15T01:00:00Z", "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["schema_version"] == 1
    assert [i["price_per_mwh"] for i in document["items"]] == [None, 30.0, 40.0]
    assert document["items"][0]["timestamp_utc"] == "2023-11-15T01:00:00Z"


def test_show_gives_the_running_interval_and_the_age_of_the_newest_price(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0, None]))
    result = cli("price", "show", "--prices", str(prices), "--at", "2023-11-15T02:30:00Z", "-o", "json")
    assert result.exit_code == 0, result.stderr
    item = result.json()
    assert item["price_per_mwh"] is None
    assert item["age_s"] == 3600 + 1800
    as_yaml = cli("price", "show", "--prices", str(prices), "--at", "2023-11-15T02:30:00Z", "-o", "yaml")
    assert yaml.safe_load(as_yaml.stdout) == item
    table = cli("price", "show", "--prices", str(prices), "--at", "2023-11-15T01:00:00Z")
    assert "2023-11-15T01:00:00Z   20 " in table.stdout


def test_show_before_the_first_price_fails_and_bad_times_are_usage_errors(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0]))
    early = cli("price", "show", "--prices", str(prices), "--at", "2000-01-01T00:00:00Z")
    assert early.exit_code == 1
    bad = cli("price", "history", "--prices", str(prices), "--since", "yesterday")
    assert bad.exit_code == 2
    assert "ISO-8601" in bad.stderr


def test_a_bad_time_names_the_option_it_was_given_to(cli, tmp_path):
    prices = write_prices(tmp_path / "p.csv", series([10.0]))
    for option in ("--at", "--since", "--until"):
        command = "show" if option == "--at" else "history"
        result = cli("price", command, "--prices", str(prices), option, "nonsense")
        assert result.exit_code == 2, result.stderr
        assert f"factoryctl: {option} `nonsense` is neither a duration nor an ISO-8601 time." in result.stderr
        assert f"hint: write e.g. {option} 1h or {option} 2026-11-22T01:00Z." in result.stderr
    far = cli("price", "show", "--prices", str(prices), "--at", "1e308d")
    assert far.exit_code == 2, far.stderr
    assert "--at" in far.stderr
    assert "--since" not in far.stderr


def test_sources_lists_the_csv_source(cli):
    result = cli("price", "sources", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert "csv" in [i["name"] for i in result.json()["items"]]
