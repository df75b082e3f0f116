"""`power simulate` without `--curve` replays on the curve `power status` names, as a fresh machine has no curve file.

It needed `--curve FILE --gpu G --workload W` while `power status` printed `curve built-in a40 squad/bert_base`; the
docs' example pointed at files outside the repository. Now the curve defaults to factory.yaml's `power.curve`, else
the built-in one, which replays exactly as a curve file with the same rows does. Prices and curves are written here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from factoryctl.sim.curve import ZEUS_A40_BERT, ZEUS_A40_LIMITS_W, ZEUS_A40_MAX_W

REPLAY = ("--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", "-o", "json")


def _prices(tmp_path: Path) -> Path:
    """Two days of hourly prices, cheap at night and dear in the evening."""
    rows = [f"2026-02-0{1 + h // 24}T{h % 24:02d}:00:00Z,{30 + 5 * (h % 24)}" for h in range(48)]
    path = tmp_path / "prices.csv"
    path.write_text("timestamp_utc,price_per_mwh\n" + "\n".join(rows) + "\n")
    return path


def _curve_file(path: Path, gpu: str, scale: float = 1.0) -> Path:
    """The built-in A40 rows as a curve file, under the name `gpu` (`scale` < 1 saves less power per limit)."""
    rows = [
        f"{gpu},{ZEUS_A40_MAX_W},squad/bert_base,{limit},{limit / ZEUS_A40_MAX_W!r},{throughput},{1 - (1 - power) * scale}"
        for limit, (power, throughput) in zip(ZEUS_A40_LIMITS_W, ZEUS_A40_BERT, strict=True)
    ]
    path.write_text("gpu,max_power_limit_w,workload,power_limit_w,pl_frac,throughput_rel,power_rel\n" + "\n".join(rows))
    return path


def test_without_curve_a_fresh_machine_replays_on_the_built_in_curve(cli: Any, tmp_path: Path) -> None:
    prices = _prices(tmp_path)
    default = cli("power", "simulate", "--prices", str(prices), *REPLAY)  # no factory.yaml anywhere
    assert default.exit_code == 0, default.stderr
    doc = json.loads(default.stdout)
    assert (doc["gpu"], doc["workload"]) == ("a40", "squad/bert_base")
    curve = _curve_file(tmp_path / "a40.csv", "a40")
    named = cli("power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "a40",
                "--workload", "squad/bert_base", *REPLAY)  # fmt: skip
    assert named.exit_code == 0, named.stderr
    assert json.loads(named.stdout) == doc


def test_without_curve_factory_yaml_power_curve_is_used(cli: Any, tmp_path: Path) -> None:
    prices = _prices(tmp_path)
    _curve_file(tmp_path / "mine.csv", "mygpu", scale=0.5)
    config = tmp_path / "factory.yaml"
    config.write_text(
        "name: c\nnodes:\n  ws: {transport: local, sim: h100-sxm}\n"
        "power: {curve: mine.csv, curve_gpu: mygpu, curve_workload: squad/bert_base}\n"
    )
    status = cli("--config", str(config), "power", "simulate", "--prices", str(prices), *REPLAY)
    assert status.exit_code == 0, status.stderr
    doc = json.loads(status.stdout)
    assert (doc["gpu"], doc["workload"]) == ("mygpu", "squad/bert_base")
    builtin = json.loads(cli("power", "simulate", "--prices", str(prices), *REPLAY).stdout)
    assert doc["cost"] != builtin["cost"]  # another curve: another replay


def test_gpu_or_workload_without_a_curve_file_and_a_file_without_them_are_usage_errors(
    cli: Any, tmp_path: Path
) -> None:
    prices = _prices(tmp_path)
    alone = cli("power", "simulate", "--prices", str(prices), "--gpu", "a40", *REPLAY)
    assert alone.exit_code == 2
    assert alone.stderr.startswith("factoryctl: --gpu and --workload name a curve in a --curve file")
    curve = _curve_file(tmp_path / "a40.csv", "a40")
    unnamed = cli("power", "simulate", "--prices", str(prices), "--curve", str(curve), *REPLAY)
    assert unnamed.exit_code == 2
    assert unnamed.stderr.startswith(f"factoryctl: --curve {curve} needs --gpu and --workload")
