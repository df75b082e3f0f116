"""The node screen shows every value whole, a lost GPU in one sentence, and each event line names its node once."""

from __future__ import annotations

import dataclasses

from factory_data import FrozenServices, fixed_history, fixed_snapshot, gpu, node
from pilot_helpers import first_snapshot, plain, screen_text

from factoryctl.live.services import DashboardEvent
from factoryctl.model.telemetry import GpuSample
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.feed_lists import EventsRenderable
from factoryctl.tui.renderables.gpu_detail import LOST_SENTENCE, GpuDetailRenderable
from factoryctl.tui.screens.node import NodeScreen

LOST_FIELDS = (
    "uuid", "name", "utilization_pct", "memory_used_mib", "memory_total_mib", "power_w", "power_limit_w",
    "temperature_c", "ecc_uncorrected",
)  # fmt: skip
LOST_LISTS = ("processes", "throttle_reasons")  # empty, and named in null_reasons (as the agent sends them)


def b200(index: int, **over: object) -> GpuSample:
    """A B200: wider numbers than an H100's (a 200-1000 W range, 1000 W draw, 180 GiB of memory)."""
    values: dict[str, object] = {
        "name": "NVIDIA B200",
        "power_w": 1000.0,
        "power_limit_w": 1000.0,
        "power_limit_min_w": 200.0,
        "power_limit_max_w": 1000.0,
        "power_limit_default_w": 1000.0,
        "memory_used_mib": 105.0 * 1024,
        "memory_total_mib": 180.0 * 1024,
    }
    values.update(over)
    return gpu(1, index, **values)


async def test_b200_values_are_shown_whole_in_the_gpu_table() -> None:
    b01 = dataclasses.replace(node(1, 0), gpus=tuple(b200(i) for i in range(2)))
    app = make_app(FrozenServices(fixed_snapshot(nodes=(b01,), racks={"demo01": "c"}, drained=frozenset())))
    async with app.run_test(size=(200, 30)) as pilot:
        await first_snapshot(pilot)
        app.push_screen(NodeScreen("demo01"))
        await pilot.pause()
        text = screen_text(app)
    assert "200-1000" in text
    assert "1000/1000 W" in text
    assert "105/180 GiB" in text


def test_a_lost_gpu_says_so_once_instead_of_every_field_unreported() -> None:
    reasons = dict.fromkeys((*LOST_FIELDS, *LOST_LISTS), "gpu_lost")
    lost = gpu(1, 3, **{f: None for f in LOST_FIELDS}, processes=(), throttle_reasons=(), null_reasons=reasons)
    text = plain(GpuDetailRenderable(lost), width=120)
    assert text.count(LOST_SENTENCE) == 1
    assert "gpu_lost" not in text
    assert "not reported" not in text


def test_a_lost_gpu_draws_no_history_bars() -> None:
    """Its last readings, with no cap or range left to scale them by, would draw as full bars."""
    reasons = dict.fromkeys((*LOST_FIELDS, *LOST_LISTS), "gpu_lost")
    lost = gpu(1, 3, **{f: None for f in LOST_FIELDS}, processes=(), throttle_reasons=(), null_reasons=reasons)
    lost = dataclasses.replace(lost, power_limit_max_w=None, power_limit_min_w=None)
    text = plain(GpuDetailRenderable(lost, fixed_history("demo01").gpus[3]), width=120)
    assert "history: none while the GPU is lost" in text
    assert "█" not in text


def test_an_unsupported_field_still_says_why() -> None:
    partial = gpu(1, 3, power_w=None, null_reasons={"power_w": "not supported"})
    assert "n/a (not supported)" in plain(GpuDetailRenderable(partial), width=120)


def test_an_event_of_one_gpu_names_its_node_once() -> None:
    event = DashboardEvent(0.0, "a01", "ecc", "a01/2: uncorrectable ECC errors 1", "error")
    line = plain(EventsRenderable([event]), width=80).strip()
    assert line.count("a01") == 1
    assert line.endswith("a01 GPU 2: uncorrectable ECC errors 1")
    other = DashboardEvent(0.0, "a01", "ecc", "a011/2: not this node", "error")  # another node's name, kept
    assert "a011/2" in plain(EventsRenderable([other]), width=80)
