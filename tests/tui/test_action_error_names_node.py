"""A node action that fails says which node failed: a node's error message no longer starts with the node's name.

The agent session's messages leave the node out (a listing's `errors` entry has it as `node`); the dashboard showed
`error.message` alone, so a cap refused on the main screen, whose cursor may have moved on, named no node.
"""

from __future__ import annotations

from typing import Any

import pytest
from factory_data import FrozenServices
from pilot_helpers import RecordingApp, confirm_by_keys, first_snapshot, last_notice, wait_until

from factoryctl.errors import NodeError

LOST = "GPU 1 on demo01 is lost; nothing was changed"
LOST_HINT = "a lost GPU answers nothing until it is reset."


class RefusingServices(FrozenServices):
    """Services whose power cap fails on the node with `error`, as the agent's refusal reaches them."""

    def __init__(self, error: NodeError) -> None:
        super().__init__()
        self.error = error

    def set_power_cap(self, node: str, watts: float, gpus: list[int] | None = None) -> list[dict[str, Any]]:
        super().set_power_cap(node, watts, gpus)
        raise self.error


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (NodeError("demo01", "driver", LOST, LOST_HINT), f"demo01: {LOST}\n{LOST_HINT}"),
        (  # a sentence that begins with its node keeps it once
            NodeError("demo01", "agent", "demo01 is not connected: no power cap was set.", "wait until it is up."),
            "demo01 is not connected: no power cap was set.\nwait until it is up.",
        ),
    ],
)
async def test_a_refused_cap_from_the_main_screen_names_its_node(error: NodeError, said: str) -> None:
    services = RefusingServices(error)
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p", *"450")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: app.notified, what="the failure toast")
        assert last_notice(app) == said
        assert app.notified[-1].severity == "error"
        assert services.calls == [("set_power_cap", "demo01", 450.0)]
