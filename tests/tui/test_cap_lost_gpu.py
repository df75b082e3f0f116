"""A node with a lost GPU is capped from the dashboard on the GPUs that answer, named in the dialog beforehand.

The agent refuses a cap of the whole node while one of its GPUs is lost ("address the node's other GPUs alone"):
the dialog says which GPUs it caps (`caps demo01/0,2-7: GPU 1 is lost`) and the request addresses only those.
"""

from __future__ import annotations

import dataclasses

from factory_data import FrozenServices, fixed_snapshot, gpu, node
from pilot_helpers import RecordingApp, confirm_by_keys, first_snapshot, last_notice, wait_until
from textual.widgets import Label

from factoryctl.model.folding import fold_indexes
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.screens.power_cap import PowerCapScreen, addressed_note, answering_gpus

LOST_FIELDS = ("uuid", "utilization_pct", "power_w", "power_limit_w", "power_limit_min_w", "power_limit_max_w")


def with_lost(node_index: int, lost: tuple[int, ...]) -> NodeSample:
    """A node of 8 GPUs whose GPUs `lost` fell off the bus (all null with `gpu_lost`, as the agent sends them)."""
    reasons = dict.fromkeys((*LOST_FIELDS, "processes", "throttle_reasons"), "gpu_lost")
    gpus = tuple(
        gpu(node_index, i, **dict.fromkeys(LOST_FIELDS), processes=(), throttle_reasons=(), null_reasons=reasons)
        if i in lost
        else gpu(node_index, i)
        for i in range(8)
    )
    return dataclasses.replace(node(node_index), gpus=gpus)


def test_the_gpus_addressed_are_those_that_answer() -> None:
    assert answering_gpus(node(1)) is None  # every GPU: the whole node
    assert addressed_note(node(1)) == ""
    assert answering_gpus(with_lost(4, (1,))) == [0, 2, 3, 4, 5, 6, 7]
    assert addressed_note(with_lost(4, (1,))) == "caps demo04/0,2-7: GPU 1 is lost"
    assert addressed_note(with_lost(4, (0, 1, 7))) == "caps demo04/2-6: GPU 0-1,7 are lost"


def test_index_ranges_fold_runs() -> None:
    assert fold_indexes([0, 2, 3, 4, 5, 6, 7]) == "0,2-7"
    assert fold_indexes([5, 1, 3, 2]) == "1-3,5"
    assert fold_indexes([]) == ""


async def test_a_node_with_a_lost_gpu_is_capped_on_the_others() -> None:
    snapshot = fixed_snapshot()
    nodes = tuple(with_lost(1, (1,)) if n.node == "demo01" else n for n in snapshot.nodes)
    services = FrozenServices(dataclasses.replace(snapshot, nodes=nodes))
    app = RecordingApp(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("p")
        assert isinstance(app.screen, PowerCapScreen)
        said = str(app.screen.query_one("#addressed", Label).render())
        assert "caps demo01/0,2-7: GPU 1 is lost" in said
        assert "7 of 8" in str(app.screen.query_one("#question", Label).render())
        await pilot.press(*"300")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the cap call")
        assert services.calls == [("set_power_cap", "demo01", 300.0, [0, 2, 3, 4, 5, 6, 7])]
        await wait_until(pilot, lambda: "capped" in last_notice(app), what="the result")
        assert "demo01: 7 GPUs capped at 300 W" in last_notice(app)


async def test_a_node_whose_gpus_are_all_lost_says_so() -> None:
    snapshot = fixed_snapshot()
    nodes = tuple(with_lost(1, tuple(range(8))) if n.node == "demo01" else n for n in snapshot.nodes)
    services = FrozenServices(dataclasses.replace(snapshot, nodes=nodes))
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p")
        assert not isinstance(app.screen, PowerCapScreen)
        assert "No GPU of demo01 answers" in last_notice(app)
        assert services.calls == []
