"""Pictures of the dashboard on the fixed factory, at fixed sizes (pytest-textual-snapshot; SVGs in __snapshots__).

An updated snapshot is a claim that the new picture is right: look at the SVG before committing it.
"""

from __future__ import annotations

import dataclasses

import pytest
from factory_data import T0, FrozenServices, fixed_nodes, fixed_snapshot, power_history
from pilot_helpers import first_snapshot, wait_until

from factoryctl.jobs.holders import GpuHolders
from factoryctl.live.services import PriceNow
from factoryctl.tui.app import DashboardApp
from factoryctl.tui.app import make_app as make_live_app
from factoryctl.tui.screens.node import NodeScreen

#: The GPUs the fixed factory's running jobs hold: llama-ft all of demo01 and demo02, eval-7b GPUs 0-3 of demo04.
HOLDERS = GpuHolders({
    "demo01": dict.fromkeys(range(8), "8csw1t2k4q"),
    "demo02": dict.fromkeys(range(8), "8csw1t2k4q"),
    "demo04": dict.fromkeys(range(4), "8csw3m9ab2"),
})  # fmt: skip


def make_app(services: FrozenServices, read_only: bool = False) -> DashboardApp:
    """The app on a clock pinned at the fixed factory's time, so the header reads the same on every run."""
    return make_live_app(services, read_only=read_only, clock=lambda: T0 + 1)


def keys(*pressed: str, node_screen: bool = False):
    """A run_before that waits for the first snapshot, presses keys, and waits for the node's history if asked."""

    async def run(pilot) -> None:
        await first_snapshot(pilot)
        if pressed:
            await pilot.press(*pressed)
        if node_screen:
            await wait_until(pilot, lambda: isinstance(pilot.app.screen, NodeScreen), what="the node screen")
            await wait_until(pilot, lambda: pilot.app.screen.history is not None, what="the node's history")
        await pilot.pause()

    return run


def test_main_80x24(snap_compare) -> None:
    assert snap_compare(make_app(FrozenServices()), terminal_size=(80, 24), run_before=keys())


def test_main_120x40_with_jobs_events_and_grid_price(snap_compare) -> None:
    outlook = (81.5, 77.0, 64.2, 40.0, 22.5, 18.0, 25.0, 48.0, 90.3, 120.0, 110.0, 95.0)
    snap = fixed_snapshot(price=PriceNow(81.5, "EUR", trend=-4.5), price_outlook_per_mwh=outlook, cost_per_hour=1.39)
    assert snap_compare(make_app(FrozenServices(snap)), terminal_size=(120, 40), run_before=keys())


def test_node_screen_80x24(snap_compare) -> None:
    app = make_app(FrozenServices(fixed_snapshot(gpu_jobs=HOLDERS)))  # demo01: every GPU held by one job
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("enter", node_screen=True))


def test_node_screen_wide_with_history(snap_compare) -> None:
    app = make_app(FrozenServices(fixed_snapshot(gpu_jobs=HOLDERS)))  # demo07: no job, its GPUs `none`
    run = keys(*["down"] * 6, "enter", "down", "down", node_screen=True)  # demo07, GPU 2: ECC errors
    assert snap_compare(app, terminal_size=(150, 44), run_before=run)


def test_node_screen_of_a_down_node(snap_compare) -> None:
    app = make_app(FrozenServices(fixed_snapshot(gpu_jobs=HOLDERS)))
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys(*["down"] * 4, "enter", node_screen=True))


def test_help_screen(snap_compare) -> None:
    assert snap_compare(make_app(FrozenServices()), terminal_size=(80, 40), run_before=keys("question_mark"))


def test_drain_confirmation(snap_compare) -> None:
    app = make_app(FrozenServices())
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("d", *"fan noise"))


def test_power_cap_dialog_shows_the_clamp(snap_compare) -> None:
    app = make_app(FrozenServices())
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("p", *"150"))


def test_filtered_by_group(snap_compare) -> None:
    app = make_app(FrozenServices())
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("slash", *"@rack-a", "enter"))


def test_sorted_by_power_descending(snap_compare) -> None:
    app = make_app(FrozenServices())
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys("s", "s", "s", "S"))


def test_read_only(snap_compare) -> None:
    app = make_app(FrozenServices(), read_only=True)
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys())


def test_no_color(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(make_app(FrozenServices()), terminal_size=(80, 24), run_before=keys())


def test_large_factory_scrolled(snap_compare) -> None:
    nodes = [dataclasses.replace(n, node=f"gpu{i + 1:03d}") for i, n in enumerate(fixed_nodes(8) * 8)]
    snap = fixed_snapshot(
        nodes=tuple(nodes),
        racks={n.node: f"r{i // 16}" for i, n in enumerate(nodes)},
        drained=frozenset({"gpu003", "gpu040"}),
        budget_kw=150.0,
        power_history_w=power_history(200, base_w=120000.0),
        groups={},
    )
    app = make_app(FrozenServices(snap))
    assert snap_compare(app, terminal_size=(100, 30), run_before=keys("end", "up", "up"))


def test_light_theme(snap_compare) -> None:
    app = make_app(FrozenServices())
    app.theme = "textual-light"  # what TEXTUAL_THEME=textual-light selects
    assert snap_compare(app, terminal_size=(80, 24), run_before=keys())
