"""The dashboard's own collector waits between reconnects as the controller does, by the factory's settings.

It used to rebuild a broken session after fixed delays (0.5-1 s, doubling to 30 s) whatever the interval and
`controller.reconnect_max_s`, so a factory told to retry slowly was retried every second while someone watched it.
Real agents on the simulated driver; a node's agent is killed with SIGKILL and its successor's start is timed.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
from agent_processes import agents_of
from waiting import wait_for

from factoryctl.config import parse_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.telemetry.links import Backoff


def config_yaml(interval_s: float, reconnect_max_s: float) -> str:
    return (
        f"name: t\ncontroller: {{interval_s: {interval_s}, reconnect_max_s: {reconnect_max_s}}}\n"
        "nodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 1}\n"
    )


def test_the_rule_is_an_interval_doubling_to_reconnect_max_s(tmp_path: Path) -> None:
    config = parse_config(config_yaml(4.0, 6.0), tmp_path / "factory.yaml", tmp_path / "state")
    assert Backoff.for_factory(config) == Backoff(base_s=4.0, cap_s=6.0)
    fast = parse_config(config_yaml(0.1, 30.0), tmp_path / "factory.yaml", tmp_path / "state")
    assert Backoff.for_factory(fast) == Backoff(base_s=0.5, cap_s=30.0)


def test_a_killed_agent_is_replaced_after_the_factorys_first_delay(tmp_path: Path) -> None:
    # interval 4 s: the first delay is drawn from [2, 4] s; the fixed rule drew it from [0.5, 1] s.
    config = parse_config(config_yaml(4.0, 30.0), tmp_path / "factory.yaml", tmp_path / "state")
    services = PolledServices(config, use_store=False)
    try:
        services.snapshot()
        wait_for(lambda: len(agents_of("n1")) == 1, 15.0, "n1's agent")
        first = agents_of("n1")[0]
        killed_at = time.monotonic()
        first.kill()
        psutil.wait_procs([first], timeout=5)
        wait_for(lambda: [p.pid for p in agents_of("n1")] not in ([], [first.pid]), 15.0, "n1's next agent")
        waited = time.monotonic() - killed_at
    finally:
        services.close()
    assert waited >= 1.9, f"the next agent started {waited:.2f} s after the kill"
