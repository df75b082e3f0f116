"""The one rule for a silent node, `silence_state`, and the two judges that must follow it: the controller's
`NodeHealth` and the dashboard's embedded collector, so a node keeps its state when the dashboard switches sources.

Clocks are injected: the thresholds are tested at chosen silences, never by waiting.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.health import NodeHealth, silence_state, silent_for_down_s


@pytest.mark.parametrize(
    ("silent_s", "state"),
    [(0.0, "up"), (1.4, "up"), (1.6, "degraded"), (3.4, "degraded"), (3.6, "down"), (60.0, "down")],
)
def test_silence_state_degrades_after_one_missed_sample_and_is_down_after_three(silent_s: float, state: str) -> None:
    assert silence_state(100.0, 100.0 + silent_s, 1.0) == state
    assert silence_state(100.0, 100.0 + 10 * silent_s, 10.0) == state  # in intervals, whatever their length


def test_a_node_never_heard_is_down_and_down_starts_where_the_rule_says() -> None:
    assert silence_state(None, 0.0, 1.0) == "down"
    assert silence_state(0.0, silent_for_down_s(2.0) + 0.01, 2.0) == "down"
    assert silence_state(0.0, silent_for_down_s(2.0) - 0.01, 2.0) == "degraded"


@pytest.mark.parametrize("interval_s", [0.5, 1.0, 5.0])
def test_the_controller_and_the_dashboard_judge_a_silent_node_alike(tmp_path: Path, interval_s: float) -> None:
    yaml = f"name: t\ncontroller: {{interval_s: {interval_s}}}\nnodes:\n  n1: {{transport: local, sim: h100-sxm}}\n"
    config = parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state")
    services = PolledServices(config, use_store=False)  # threads never started: judged by hand, on a chosen clock
    try:
        node = services._nodes["n1"]
        node.latest = NodeSample(node="n1", time=0.0)
        node.health.seen(1000.0)
        for tenths in range(60):
            silent = tenths / 10 * interval_s
            health = NodeHealth("n1", interval_s)
            health.seen(1000.0)
            health.tick(1000.0 + silent)
            shown = node.sample(0.0, 1000.0 + silent).state
            rule = silence_state(1000.0, 1000.0 + silent, interval_s)
            assert (silent, shown, health.state) == (silent, rule, rule)
    finally:
        services.close()
