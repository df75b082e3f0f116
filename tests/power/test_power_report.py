"""`power report`: a past period's energy, cost at each interval's price, capped GPU-time and limit changes per node.

Each test builds a real store with known samples (two GPUs of n1 over two hours, sampled every 10 s with their
energy counters), audit entries and hourly prices, and checks the report's numbers against hand-computed ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.render import iso_utc
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.power.report import capped_seconds, limit_course
from factoryctl.store.rows import AuditEntry
from factoryctl.store.sqlite import Store

HOUR = 3600.0
T0 = 1_699_999_200.0  # on the hour: the prices' intervals start on it
DEFAULT_W = 700.0
#: n1's GPU 0 draws 300 W in the first hour (capped by the policy) and 600 W in the second; GPU 1 draws 100 W.
DRAW = {0: (300.0, 600.0), 1: (100.0, 100.0)}
#: GPU 0 capped by the policy for the first hour; GPU 1 capped by hand for the last half hour.
AUDIT = [
    AuditEntry(T0, "n1", 0, "set", DEFAULT_W, 350.0, reason="power apply: tiers policy p.yaml: above 50 at 100/MWh"),
    AuditEntry(T0 + HOUR, "n1", 0, "set", 350.0, DEFAULT_W, reason="power apply: tiers policy p.yaml: no tier"),
    AuditEntry(T0 + 1.5 * HOUR, "n1", 1, "set", DEFAULT_W, 500.0, reason=None),
]


def _samples(store: Store, hours: tuple[int, ...] = (0, 1)) -> None:
    """n1's samples every 10 s over the given hours of the two, counters summing each GPU's draw."""
    energy = {0: 0.0, 1: 0.0}
    for step in range(int(2 * HOUR) // 10 + 1):
        hour = min(1, step * 10 // int(HOUR))
        if step:
            for gpu, draw in DRAW.items():
                energy[gpu] += draw[min(1, (step - 1) * 10 // int(HOUR))] * 10
        if hour not in hours:
            continue
        limits = {0: 350.0 if hour == 0 else DEFAULT_W, 1: 500.0 if step * 10 >= 1.5 * HOUR else DEFAULT_W}
        gpus = tuple(
            GpuSample(
                "n1", g, power_w=DRAW[g][hour], energy_j=energy[g], power_limit_w=limits[g],
                power_limit_default_w=DEFAULT_W,
            )
            for g in (0, 1)
        )  # fmt: skip
        store.write([NodeSample("n1", T0 + step * 10, gpus=gpus)])


def _factory(tmp_path: Path, prices: tuple[str, ...] | None = ("100", "20"), samples: tuple[int, ...] = (0, 1)) -> Path:
    """factory.yaml of n1 and n2 (never collected), its store with n1's samples and audit, and hourly prices."""
    power = ""
    if prices is not None:
        rows = "".join(f"{iso_utc(T0 + i * HOUR)},{p}\n" for i, p in enumerate(prices))
        (tmp_path / "prices.csv").write_text("timestamp_utc,price_per_mwh\n" + rows)
        power = "power:\n  price_source: csv\n  prices: prices.csv\n"
    config = _config(tmp_path, power)
    (tmp_path / "state").mkdir()
    store = Store(tmp_path / "state" / "factory.db")
    try:
        _samples(store, samples)
        store.add_audit(AUDIT)
    finally:
        store.close()
    return config


def _config(tmp_path: Path, power: str = "") -> Path:
    """factory.yaml of n1 and n2, its store under tmp_path/state, and `power` (a YAML block)."""
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local}}\n{power}")
    return config


def _report(cli: Any, config: Path, *args: str) -> Any:
    window = ("--since", iso_utc(T0), "--until", iso_utc(T0 + 2 * HOUR))
    return cli("-c", str(config), "power", "report", *window, *args)


def test_each_node_gets_its_energy_cost_prices_capping_and_changes(cli: Any, tmp_path: Path) -> None:
    result = _report(cli, _factory(tmp_path), "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    document = result.json()
    (n1,) = document["items"]
    assert n1["energy_kwh"] == pytest.approx(1.1, rel=0.002)  # 0.3 + 0.6 kWh of GPU 0, 0.2 of GPU 1
    assert n1["cost"] == pytest.approx(0.4 * 100 / 1000 + 0.7 * 20 / 1000, rel=0.002)  # each hour at its price
    assert n1["avg_power_w"] == pytest.approx(550, rel=0.002)
    assert n1["paid_per_mwh"] == pytest.approx(0.054 / 0.0011, rel=0.002)  # below the mean: less drawn at 100
    assert n1["mean_price_per_mwh"] == pytest.approx(60)
    assert n1["capped_pct"] == pytest.approx(100 * (HOUR + 0.5 * HOUR) / (2 * 2 * HOUR))  # 37.5
    assert (n1["limit_changes_policy"], n1["limit_changes_by_hand"]) == (2, 1)
    assert n1["intervals_without_telemetry"] == 0
    assert document["total"]["node"] == "TOTAL"
    assert document["total"]["cost"] == n1["cost"]
    assert result.stderr == ""


def test_a_node_never_collected_is_unknown_not_zero_and_said(cli: Any, tmp_path: Path) -> None:
    result = _report(cli, _factory(tmp_path))
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["NODE", "GPUS", "ENERGY", "kWh"]
    assert lines[1].split()[:4] == ["n1", "2", "1.100", "0.05"]
    assert lines[2].split()[:4] == ["n2", "0", "-", "-"]
    assert lines[3].split()[:4] == ["TOTAL", "2", "1.100", "0.05"]  # the node with no reading adds nothing known
    assert "no stored energy reading for n2" in result.stderr
    assert "energy and cost unknown, not 0" in result.stderr


def test_a_gpu_without_readings_is_said_and_the_others_summed(cli: Any, tmp_path: Path) -> None:
    config = _factory(tmp_path)
    store = Store(tmp_path / "state" / "factory.db")
    try:  # GPU 2 of n1 answers once, with no power and no counter (lost): the store knows it, with no reading
        store.write([NodeSample("n1", T0 + 2 * HOUR + 10, gpus=(GpuSample("n1", 2),))])
    finally:
        store.close()
    result = _report(cli, config, "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert (n1["gpus"], n1["energy_kwh"]) == (3, pytest.approx(1.1, rel=0.002))
    assert "no stored energy reading for some GPUs of n1 from " in result.stderr
    assert "energy sums the others only" in result.stderr


def test_prices_unknown_for_part_of_the_period_give_no_cost(cli: Any, tmp_path: Path) -> None:
    config = _factory(tmp_path, prices=("100",))  # the first hour only
    result = _report(cli, config, "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert n1["energy_kwh"] == pytest.approx(1.1, rel=0.002)
    assert (n1["cost"], n1["paid_per_mwh"], n1["mean_price_per_mwh"]) == (None, None, None)
    assert (
        "no cost: the price source's intervals do not cover the whole period (its prices run from"
        f" {iso_utc(T0)} to {iso_utc(T0 + HOUR)})" in result.stderr
    )


def test_an_interval_whose_price_is_unknown_gives_no_cost_and_is_named(cli: Any, tmp_path: Path) -> None:
    result = _report(cli, _factory(tmp_path, prices=("100", "")), "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert n1["energy_kwh"] == pytest.approx(1.1, rel=0.002)
    assert (n1["cost"], n1["mean_price_per_mwh"]) == (None, None)
    assert (
        f"no cost: 1 of the period's 2 price intervals have no price (the first: {iso_utc(T0 + HOUR)})" in result.stderr
    )


def test_without_a_price_source_the_energy_is_reported_and_the_cost_said_missing(cli: Any, tmp_path: Path) -> None:
    result = _report(cli, _factory(tmp_path, prices=None), "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert n1["energy_kwh"] == pytest.approx(1.1, rel=0.002)
    assert n1["cost"] is None
    assert "no cost: no price source is configured (power.price_source in factory.yaml)" in result.stderr


def test_an_interval_without_telemetry_is_counted_and_said(cli: Any, tmp_path: Path) -> None:
    result = _report(cli, _factory(tmp_path, samples=(0,)), "n1", "-o", "json")
    assert result.exit_code == 0, result.stderr
    (n1,) = result.json()["items"]
    assert n1["intervals_without_telemetry"] == 1
    assert n1["energy_kwh"] == pytest.approx(0.4, rel=0.005)  # the first hour's, as measured; nothing invented
    assert n1["cost"] == pytest.approx(0.4 * 100 / 1000, rel=0.005)
    assert n1["paid_per_mwh"] == pytest.approx(100, rel=0.005)
    assert n1["mean_price_per_mwh"] == pytest.approx(100)  # its hour with readings: not the period's 60
    assert (
        "n1 has no telemetry for 1 of the period's 2 price intervals: energy and cost count the others only"
        in result.stderr
    )


def test_no_reading_in_the_period_is_one_sentence_and_a_hint(cli: Any, tmp_path: Path) -> None:
    config = _factory(tmp_path)
    result = cli(
        "-c", str(config), "power", "report", "--since", iso_utc(T0 - 10 * HOUR), "--until", iso_utc(T0 - HOUR)
    )
    assert result.exit_code == 0  # an empty report is no failure (docs/cli.md, Exit codes): a note says why
    assert result.stdout.splitlines()[-1].split()[2:5] == ["-", "-", "-"]  # TOTAL: energy, cost, paid unknown
    note = result.stderr.splitlines()[0]
    assert note.startswith("factoryctl: nothing to report: no GPU energy is stored for any node from ")
    assert "; the controller (`factoryctl controller run`) or `factoryctl telemetry collect` from cron" in note


def test_a_period_all_in_the_future_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    result = cli(
        "-c", str(_factory(tmp_path)), "power", "report", "--since", "2999-01-01T00:00Z", "--until", "2999-01-02"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith("factoryctl: --since 2999-01-01T00:00Z is in the future")


def test_no_store_yet_says_where_readings_come_from(cli: Any, tmp_path: Path) -> None:
    result = cli("-c", str(_config(tmp_path)), "power", "report")
    assert result.exit_code == 0  # nothing stored yet: the empty report (docs/cli.md, Exit codes)
    assert "no GPU energy yet: there is no store at" in result.stderr
    assert "telemetry collect" in result.stderr


def test_the_limit_course_starts_from_the_limit_the_first_change_replaced() -> None:
    course = limit_course(AUDIT[:2], newest_w=DEFAULT_W)
    assert course == [(None, DEFAULT_W), (T0, 350.0), (T0 + HOUR, DEFAULT_W)]
    assert capped_seconds(course, DEFAULT_W, T0 - HOUR, T0 + 2 * HOUR) == (HOUR, 3 * HOUR)
    unchanged = limit_course([], newest_w=400.0)  # no change in the period: the limit seen last, all along
    assert capped_seconds(unchanged, DEFAULT_W, T0, T0 + HOUR) == (HOUR, HOUR)
    unknown = limit_course([], newest_w=None)
    assert capped_seconds(unknown, DEFAULT_W, T0, T0 + HOUR) == (0.0, 0.0)


def test_before_any_store_every_price_interval_counts_as_without_telemetry(cli: Any, tmp_path: Path) -> None:
    stored = _report(cli, _factory(tmp_path), "n2", "-o", "json")  # n2: never collected, in a store that exists
    assert stored.exit_code == 0, stored.stderr
    (tmp_path / "state" / "factory.db").unlink()
    fresh = _report(cli, _config(tmp_path, "power:\n  price_source: csv\n  prices: prices.csv\n"), "-o", "json")
    assert fresh.exit_code == 0, fresh.stderr
    assert [n["intervals_without_telemetry"] for n in fresh.json()["items"]] == [2, 2]  # both hours, as in a store
    assert stored.json()["items"][0]["intervals_without_telemetry"] == 2
