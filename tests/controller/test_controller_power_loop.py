"""The controller's power loop: the policy applied at a price interval's start, and a hand `power set` brought back.

Real agents on the simulated driver (local transport). The controller's wall clock is one the test moves (its timers
run on the real monotonic clock), so a price interval's start comes when the test says, not after an hour; the loop
re-reads that clock every second. Prices are 60 before the boundary and 150 from it, and a tiers policy caps at 80 %
of the default above 120: 700 W before, 560 W after, on an H100.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.sqlite import Store

HOUR = 3600
TIERS = "policy: tiers\ntiers:\n  - {above_per_mwh: 120, cap_pct: 80}\n"


class Clock:
    """A wall clock `offset` seconds from the real one, which the test sets."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


def _fleet(tmp_path: Path, boundary: int, interval: str, extra: str = "") -> Path:
    rows = ["timestamp_utc,price_per_mwh"]
    for h in range(-48, 24):
        stamp = datetime.fromtimestamp(boundary + h * HOUR, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},{150 if h >= 0 else 60}")
    (tmp_path / "prices.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "policy.yaml").write_text(TIERS)
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: pl\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  h01: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n{extra}"
        "controller: {interval_s: 0.5}\nscheduler: {interval: 0s}\n"
        f"power:\n  policy: policy.yaml\n  price_source: csv\n  prices: prices.csv\n  interval: {interval}\n"
    )
    return path


def _limits(cli: Any, factory: Path) -> list[float]:
    listing = cli("--config", str(factory), "gpus", "h01", "-o", "json").json()["items"]
    return [gpu["power_limit_w"] for gpu in listing]


def _audit(cli: Any, factory: Path) -> list[dict[str, Any]]:
    return cli("--config", str(factory), "audit", "-o", "json").json()["items"]


def _reloads(tmp_path: Path) -> list[str]:
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        return [event.message for event in store.events(0, None, limit=100, kind="config_reloaded")]
    finally:
        store.close()


def test_the_loop_applies_the_policy_at_the_boundary_and_brings_back_a_hand_set(cli: Any, tmp_path: Path) -> None:
    boundary = (int(time.time()) // HOUR + 1) * HOUR
    clock = Clock(boundary - 30 - time.time())
    down = "  gone: {transport: local, python: /nonexistent/python3, sim: {profile: h100-sxm, gpus: 1}}\n"
    factory = _fleet(tmp_path, boundary, "1h", down)
    controller = Controller(load_config(factory), clock=clock, monotonic=time.monotonic)
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:

        def h01_read() -> bool:  # a run made once h01's link was up (one before waits for it, retried within 10 s)
            last = controller.power_loop.last if controller.power_loop is not None else None
            return last is not None and [error.node for error in last.errors] == ["gone"]

        wait_for(h01_read, 30, "a run with h01's link up")
        assert _limits(cli, factory) == [700, 700]  # 60 before the boundary: no tier, nothing to change
        stats = controller.stats()["power_loop"]
        assert (stats["last_changed"], stats["last_errors"]) == (0, 1)  # `gone` skipped
        clock.offset = boundary + 1 - time.time()  # the next hour starts: 150, the tier caps at 560 W
        wait_for(lambda: _limits(cli, factory) == [560, 560], 30, "the boundary's cap")
        entry = _audit(cli, factory)[-1]
        assert entry["reason"].startswith("controller power loop: tiers policy "), entry["reason"]
        assert "tier at 150/MWh" in entry["reason"]
        wait_for(lambda: controller.stats()["power_loop"]["last_changed"] == 2, 30, "the run's figures")

        factory.write_text(factory.read_text().replace("interval: 1h", "interval: 1s"))
        controller.request_reload()  # SIGHUP: the new interval re-asserts the plan every second
        assert cli("--config", str(factory), "power", "set", "h01/0", "--watts", "300").exit_code == 0
        wait_for(lambda: _audit(cli, factory)[-1]["after_w"] == 560, 30, "the hand set brought back")
        hand, back = _audit(cli, factory)[-2:]
        assert (hand["after_w"], back["before_w"], back["after_w"]) == (300, 300, 560)
        assert back["reason"].startswith("controller power loop: "), back["reason"]
        wait_for(lambda: _limits(cli, factory) == [560, 560], 30, "the limits seen back at plan")
    finally:
        controller.request_stop()
        runner.join(30)


def test_interval_0s_leaves_the_policy_to_cron_and_a_reload_starts_the_loop(tmp_path: Path) -> None:
    boundary = (int(time.time()) // HOUR + 1) * HOUR
    factory = _fleet(tmp_path, boundary, "0s")
    controller = Controller(load_config(factory))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller.collector is not None and controller.collector.up_count() == 1, 30, "h01 up")
        assert controller.power_loop is None
        assert controller.stats()["power_loop"] is None
        factory.write_text(factory.read_text().replace("interval: 0s", "interval: 5m"))
        controller.request_reload()
        wait_for(lambda: controller.power_loop is not None and controller.power_loop.runs >= 1, 30, "a first run")
        assert controller.power_loop is not None
        assert controller.power_loop.interval_s == 300
        wait_for(lambda: any("power.interval 0s -> 5m" in said for said in _reloads(tmp_path)), 30, "the reload said")
        factory.write_text(factory.read_text().replace("  policy: policy.yaml\n", ""))
        controller.request_reload()
        wait_for(lambda: controller.power_loop is None, 30, "the loop stopped")
    finally:
        controller.request_stop()
        runner.join(30)
