"""A dashboard cap whose new limit is unknown says so: never "capped at 0 W", nor an event "power cap " with no value.

A GPU's `enforced_w` is null when the agent lost the GPU right after its set, or when nvidia-smi's query after the
sets failed: the limit changed, to a value nobody could read back. The notification took it for 0 W and the event
left it out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factoryctl.config import parse_config
from factoryctl.live.services_polled import PolledServices
from factoryctl.tui.screens.node_actions import describe_cap_result

UNKNOWN = [
    {"index": 0, "before_w": 700.0, "enforced_w": None, "clamped": False},
    {"index": 1, "before_w": 700.0, "enforced_w": None, "clamped": False},
]


def test_a_cap_read_back_as_null_is_said_unknown_not_0_w() -> None:
    assert describe_cap_result("n1", 450, UNKNOWN) == "n1: 2 GPUs capped; the new limit could not be read back"
    one_known = [{**UNKNOWN[0], "enforced_w": 450.0}, UNKNOWN[1]]
    assert describe_cap_result("n1", 450, one_known) == (
        "n1: 2 GPUs capped at 450 W; the new limit of 1 of them could not be read back"
    )


def test_a_known_cap_is_described_as_before() -> None:
    answers = [{**a, "enforced_w": 450.0} for a in UNKNOWN]
    assert describe_cap_result("n1", 450, answers) == "n1: 2 GPUs capped at 450 W"
    clamped = [{**a, "enforced_w": 200.0, "clamped": True} for a in UNKNOWN]
    assert describe_cap_result("n1", 150, clamped) == "n1: 2 GPUs capped at 200 W (clamped from 150 W)"


class CappingSession:
    """The live session of a node whose GPUs took the cap but could not say to what.

    A stub, not the simulated agent: the agent sets a GPU and reads its new limit back within one request
    (`_set_limits` in factoryctl/agent/server.py), so `factoryctl sim inject --lost` lands either before the set
    (which then fails: nothing is capped) or after the read-back (which already has the value). No real fault makes
    that one read-back fail, so the answer the agent gives then is played by this session.
    """

    def set_power_limit(self, watts: float, gpus: list[int] | None, clamp: bool) -> list[dict[str, Any]]:
        return [dict(a) for a in UNKNOWN]


def test_the_dashboards_event_says_the_new_limit_is_unknown(tmp_path: Path) -> None:
    yaml = "name: t\nnodes:\n  n1: {transport: local, sim: h100-sxm}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False)
    try:  # threads never started: the node's link is handed a session by hand
        services._nodes["n1"].link._set_session(CappingSession())  # type: ignore[arg-type]
        answers = services.set_power_cap("n1", 450)
        # not `snapshot()`: it starts the collector, which would sample through the stub
        (event,) = [e for e in services._all_events(0.0) if e.kind == "power_limit"]
    finally:
        services.close()
    assert describe_cap_result("n1", 450, answers) == "n1: 2 GPUs capped; the new limit could not be read back"
    assert (event.node, event.message) == ("n1", "power cap set; the new limit could not be read back")
