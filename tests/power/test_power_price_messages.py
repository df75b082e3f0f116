"""Review 13: what `price` and `power simulate` said was incomplete, or said something else than happened.

`price history --until` alone never warned of prices ending early; `power simulate -o jsn` offered the csv it then
refused; an out-of-range `max_throughput_loss` did not name its file; all-unknown prices were blamed on prices
cancelling out, with costs printed as ints; `price show --at` before the first row named neither time; an empty
file "lacked columns"; a wrong header was not shown; `-0.00` printed as -0; `price sources` called OBJECT `value`.
"""

from __future__ import annotations

from pathlib import Path

from curve_rows import HEADER, simulate

PRICES_HEADER = "timestamp_utc,price_per_mwh\n"


def _prices(tmp_path: Path, rows: str, name: str = "p.csv") -> Path:
    path = tmp_path / name
    path.write_text(PRICES_HEADER + rows)
    return path


def _curve(tmp_path: Path) -> Path:
    curve = tmp_path / "c.csv"
    curve.write_text(HEADER + "x,w,0.5,0.8,0.5\nx,w,1.0,1.0,1.0\n")
    return curve


def test_history_with_only_until_warns_when_the_prices_end_before_it(cli, tmp_path):
    prices = _prices(tmp_path, "2023-06-01T00:00:00Z,50\n2023-06-01T01:00:00Z,60\n")
    result = cli("price", "history", "--prices", str(prices), "--until", "2023-06-02")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith(
        f"factoryctl: warning: the prices in {prices} end at 2023-06-01T02:00:00Z, before 2023-06-02T00:00:00Z:"
    )
    covered = cli("price", "history", "--prices", str(prices), "--until", "2023-06-01T02:00Z")
    assert (covered.exit_code, covered.stderr) == (0, "")


def test_a_mistyped_document_format_suggests_only_the_formats_the_command_takes(cli, tmp_path):
    prices = _prices(tmp_path, "2023-06-01T00:00:00Z,50\n")
    result = cli(*simulate(prices, _curve(tmp_path), "-o", "jsn"))
    assert result.exit_code == 2
    assert result.stderr == (
        "factoryctl: unknown output format 'jsn'.\nhint: choose from table, wide, json, yaml; did you mean json?\n"
    )


def test_an_out_of_range_loss_in_a_policy_file_names_the_file(cli, tmp_path):
    prices = _prices(tmp_path, "2023-06-01T00:00:00Z,50\n")
    policy = tmp_path / "p13.yaml"
    policy.write_text("policy: optimize\nmax_throughput_loss: 1.5\n")
    args = simulate(prices, _curve(tmp_path), "--policy", str(policy))
    args.remove("--max-throughput-loss")
    args.remove("0.05")
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"factoryctl: max_throughput_loss in {policy} must be a fraction in [0, 1), not 1.5.\n"
    )


def test_all_prices_unknown_gives_that_as_the_cause_and_float_costs(cli, tmp_path):
    prices = _prices(tmp_path, "2023-01-01T00:00:00Z,\n2023-01-01T01:00:00Z,NaN\n")
    result = cli(*simulate(prices, _curve(tmp_path), "-o", "json"))
    assert result.exit_code == 0, result.stderr
    document = result.json()
    assert (type(document["baseline_cost"]), type(document["cost"])) == (float, float)
    assert '"baseline_cost": 0.0,' in result.stdout
    assert (
        "factoryctl: note: no interval has a known price (all 2 are empty or NaN), so there is no bill to save on and"
        " saving_pct is null.\n"
    ) in result.stderr
    assert "cancel out" not in result.stderr


def test_show_before_the_first_row_names_the_time_asked_and_the_first_row(cli, tmp_path):
    prices = _prices(tmp_path, "2023-01-01T00:00:00Z,10\n")
    result = cli("price", "show", "--prices", str(prices), "--at", "2020-01-01T00:00Z")
    assert result.exit_code == 1
    assert result.stderr == (
        f"factoryctl: no price in {prices} at or before 2020-01-01T00:00:00Z: its first row starts at"
        " 2023-01-01T00:00:00Z.\n"
        "hint: give --at a time from 2023-01-01T00:00:00Z on, or a prices file that covers 2020-01-01T00:00:00Z.\n"
    )


def test_an_empty_file_is_said_to_be_empty_and_a_wrong_header_is_shown(cli, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = cli("price", "show", "--prices", str(empty))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"factoryctl: {empty}: the prices file is empty (not even a header line).\n")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("time,price\n2023-01-01T00:00:00Z,10\n")
    result = cli("price", "show", "--prices", str(wrong))
    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"factoryctl: {wrong}:1: the prices file lacks column(s) timestamp_utc, price_per_mwh; its header is"
        " 'time,price'.\n"
    )


def test_a_negative_zero_price_is_shown_as_zero(cli, tmp_path):
    prices = _prices(tmp_path, "2023-01-01T00:00:00Z,-0.00\n")
    shown = cli("price", "show", "--prices", str(prices), "--at", "2023-01-01T00:30Z", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert '"price_per_mwh": 0.0,' in shown.stdout
    table = cli("price", "history", "--prices", str(prices))
    assert "2023-01-01T00:00:00Z   0\n" in table.stdout
    assert " -0" not in table.stdout


def test_price_sources_json_names_the_object_as_the_table_does(cli):
    listed = cli("price", "sources", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    (builtin,) = [item for item in listed.json()["items"] if item["name"] == "csv" and item["status"] == "built-in"]
    assert set(builtin) == {"name", "object", "package", "status"}
    assert ":" in builtin["object"]
