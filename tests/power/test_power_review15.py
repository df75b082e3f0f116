"""Review 15 of power and prices: messages that named the wrong cause or no source, and numbers shown as noise.

A UTF-16 file (Windows' "Unicode text") was told to convert from Latin-1, which kept its NUL bytes; a plugin that
returned no prices was "the price series is empty" (exit 2) to `power simulate`; a loss of exactly D printed as
5.000000000000105; the costs in the table had no unit and became 1.68e+06; the local-time hint showed Paris times
for any file; and `config validate` did not look for the power.policy file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import test_price_plugins
from power_data import flat, series, write_prices
from test_power_simulate_cli import simulate_args
from test_price_plugins import factory_yaml

make_dist = test_price_plugins.make_dist  # the fixture that installs a distribution, shared by name
PRICES = "timestamp_utc,price_per_mwh\n2023-01-01T00:00:00Z,5\n2023-01-01T01:00:00Z,6\n"
EMPTY_PLUGIN = (
    "class Source:\n    def __init__(self, prices):\n        pass\n    def fetch(self, start_s=None, end_s=None):\n"
)
EMPTY_PLUGIN += "        return []\n"


@pytest.mark.parametrize(
    ("codec", "bom", "mark"), [("utf-16-le", b"\xff\xfe", "FF FE"), ("utf-16-be", b"\xfe\xff", "FE FF")]
)
def test_a_utf16_prices_file_is_named_with_the_conversion_that_works(cli, tmp_path: Path, codec, bom, mark) -> None:
    encoded = PRICES.encode(codec)
    path = tmp_path / "p.csv"
    path.write_bytes(bom + encoded)
    result = cli("price", "show", "--prices", str(path), "--at", "2023-01-01T00:30:00Z")
    assert result.exit_code == 2, result.stderr
    first, hint = result.stderr.splitlines()
    assert (
        first
        == f"factoryctl: {path}: the prices file is UTF-16 text (it starts with the byte-order mark {mark}), not UTF-8."
    )
    assert hint == f"hint: convert it to UTF-8 (`iconv -f utf-16 -t utf-8 {path} > p-utf8.csv`) and give that file."
    (tmp_path / "p-utf8.csv").write_text((bom + encoded).decode("utf-16"))  # what that iconv writes
    converted = cli("price", "show", "--prices", str(tmp_path / "p-utf8.csv"), "--at", "2023-01-01T00:30:00Z")
    assert converted.exit_code == 0, converted.stderr


def test_utf16_curve_and_policy_files_are_named_too(cli, tmp_path: Path, curve_file: Path) -> None:
    prices = write_prices(tmp_path / "p.csv", series(flat(48)))
    wide_curve = tmp_path / "c.csv"
    wide_curve.write_text(curve_file.read_text(), encoding="utf-16")
    result = cli(*simulate_args(prices, wide_curve, "--price-visibility", "day-ahead"))
    assert result.exit_code == 2, result.stderr
    assert "the curve file is UTF-16 text (it starts with the byte-order mark FF FE), not UTF-8." in result.stderr
    policy = tmp_path / "policy.yaml"
    policy.write_text("policy: optimize\n", encoding="utf-32")
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "--policy", str(policy)))
    assert result.exit_code == 2, result.stderr
    assert "the policy file is UTF-32 text (it starts with the byte-order mark FF FE 00 00)" in result.stderr
    assert "iconv -f utf-32 -t utf-8" in result.stderr


def test_simulate_on_a_plugin_without_prices_names_it_as_price_show_does(cli, tmp_path, make_dist, curve_file):
    make_dist("fcpl-none", {"none": "fcpl_none:Source"}, {"fcpl_none": EMPTY_PLUGIN})
    config = str(factory_yaml(tmp_path, "power:\n  price_source: none\n"))
    args = simulate_args(tmp_path / "unused.csv", curve_file, "--price-visibility", "day-ahead")
    del args[2:4]  # no --prices: the configured source
    simulated = cli("-c", config, *args)
    shown = cli("-c", config, "price", "show")
    assert simulated.exit_code == shown.exit_code == 1, simulated.stderr
    first, hint = simulated.stderr.splitlines()
    assert (
        first == "factoryctl: no price in price source `none` (package fcpl-none) to simulate over: it has no prices."
    )
    assert hint == "hint: check the price feed and power.prices in factory.yaml, or pass --prices FILE."
    assert shown.stderr.splitlines()[1] == hint


def test_history_on_a_plugin_without_prices_names_it_as_price_show_does(cli, tmp_path, make_dist) -> None:
    make_dist("fcpl-none", {"none": "fcpl_none:Source"}, {"fcpl_none": EMPTY_PLUGIN})
    config = str(factory_yaml(tmp_path, "power:\n  price_source: none\n"))
    for args in ((), ("--since", "7d"), ("-o", "json")):
        listed = cli("-c", config, "price", "history", *args)
        assert listed.exit_code == 1, listed.stderr
        assert listed.stdout == ""
        first, hint = listed.stderr.splitlines()
        assert first == "factoryctl: no price in price source `none` (package fcpl-none) to list: it has no prices."
        assert hint == "hint: check the price feed and power.prices in factory.yaml, or pass --prices FILE."


def test_a_loss_of_exactly_d_reads_as_d_and_within_agrees(cli, tmp_path: Path, curve_file: Path) -> None:
    prices = write_prices(tmp_path / "p.csv", series(flat(24 * 14)))
    result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead", "-o", "json"))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert document["throughput_loss_pct"] == 5.0  # was 5.000000000000105
    assert document["within_loss_budget"] is True
    assert document["saving_pct"] == document["blind_saving_pct"] == document["bound_saving_pct"] == 16.5


def test_the_table_shows_costs_to_the_cent_with_their_unit(cli, tmp_path: Path, curve_file: Path) -> None:
    def table(price: float) -> dict[str, str]:
        prices = write_prices(tmp_path / "p.csv", series(flat(24 * 14, price)))
        result = cli(*simulate_args(prices, curve_file, "--price-visibility", "day-ahead"))
        assert result.exit_code == 0, result.stderr
        return dict(line.split(None, 1) for line in result.stdout.splitlines())

    dear = table(5000.0)
    assert dear["baseline_cost"] == "1680000.00 (in the prices' currency, per MW of GPUs)"  # was 1.68e+06
    assert dear["cost"].endswith(" (in the prices' currency, per MW of GPUs)")
    assert "e+" not in dear["cost"]
    assert table(-0.000001)["baseline_cost"] == "0.00 (in the prices' currency, per MW of GPUs)"  # never -0.00


def test_the_local_time_hint_shows_the_files_own_repeated_time(cli, tmp_path: Path) -> None:
    path = tmp_path / "ny.csv"
    hours = ["2023-11-05T00:00:00", "2023-11-05T01:00:00", "2023-11-05T01:00:00", "2023-11-05T02:00:00"]
    path.write_text("timestamp_utc,price_per_mwh\n" + "".join(f"{h},30\n" for h in hours))
    result = cli("price", "show", "--prices", str(path))
    assert result.exit_code == 2, result.stderr
    assert "2023-11-05T01:00:00 has no offset, so it is read as UTC" in result.stderr
    hint = result.stderr.splitlines()[1]
    assert "(2023-11-05T01:00:00±HH:MM, then 2023-11-05T01:00:00 again with the offset one hour lower" in hint
    assert "2023-10-29" not in hint


def test_config_validate_warns_when_the_policy_file_is_not_there(cli, tmp_path: Path) -> None:
    config = str(factory_yaml(tmp_path, "power:\n  policy: policy.yaml\n"))
    missing = cli("-c", config, "config", "validate")
    assert missing.exit_code == 0, missing.stderr
    assert f"power.policy: {tmp_path / 'policy.yaml'} is not a file that can be read." in missing.stderr
    (tmp_path / "policy.yaml").write_text("policy: optimize\nmax_throughput_loss: 0.05\n")
    present = cli("-c", config, "config", "validate")
    assert present.exit_code == 0
    assert "warning" not in present.stderr
