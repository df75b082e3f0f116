"""The dashboard driven with Pilot on the fixed factory: navigation, filter, sort, drill-down, actions, read-only."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from factory_data import T0, FrozenServices, fixed_snapshot
from pilot_helpers import (
    RecordingApp,
    confirm_by_keys,
    first_snapshot,
    last_notice,
    plain,
    screen_text,
    wait_until,
    when_armed,
)
from textual.widgets import Static

from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.node_rows import line_width, widths_for
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.guarded_dialog import GuardedDialog
from factoryctl.tui.screens.help import HelpScreen
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen
from factoryctl.tui.widgets.factory_header import FactoryHeader
from factoryctl.tui.widgets.filter_bar import FilterBar
from factoryctl.tui.widgets.gpu_detail import GpuDetail
from factoryctl.tui.widgets.gpu_table import GpuTable
from factoryctl.tui.widgets.node_table import NodeTable


def table(app) -> NodeTable:
    return app.screen.query_one(NodeTable)


def cell(app, node: str, column: str) -> str:
    return table(app).cell_text(node, column)


async def test_main_screen_shows_every_node_at_80x24(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        assert isinstance(app.screen, MainScreen)
        assert table(app).rows_shown == [f"demo{i:02d}" for i in range(1, 9)]
        assert cell(app, "demo05", "state") == "down"
        assert cell(app, "demo05", "util") == "timeout"
        assert cell(app, "demo03", "flags") == "drained"
        assert cell(app, "demo07", "flags") == "unhealthy"
        assert cell(app, "demo01", "rack") == "a"
        assert not app.screen.query_one("#panels").display  # folded away at 24 lines


async def test_panels_show_on_tall_terminals_and_toggle(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(120, 40)) as pilot:
        await first_snapshot(pilot)
        panels = app.screen.query_one("#panels")
        assert panels.display
        await pilot.press("e")
        assert not panels.display
        await pilot.press("e")
        assert panels.display


async def test_sort_keys_and_header_click(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("s")  # node -> state
        assert table(app).sort_column == "state"
        assert table(app).rows_shown[:2] == ["demo05", "demo06"]
        await pilot.press("S")
        assert table(app).sort_reverse
        assert table(app).rows_shown[-2:] == ["demo06", "demo05"]
        await pilot.press("s")  # -> util, busiest first
        assert table(app).sort_column == "util"
        assert table(app).rows_shown[0] == "demo07"
        table(app).sort_by("power")
        await pilot.pause()
        powers = [fixed_snapshot().node(n).power_w for n in table(app).rows_shown]
        known = [p for p in powers if p is not None]
        assert known == sorted(known, reverse=True)
        assert "sort power ▼" in str(table(app).border_title)


async def test_clicking_a_header_sorts_by_it(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        t = table(app)
        x = line_width(widths_for(t._rows)[:6]) + 1  # the Rack header
        await pilot.click(NodeTable, offset=(x, 1))
        await wait_until(pilot, lambda: t.sort_column == "rack", what="sort by rack")
        assert t.rows_shown[:4] == ["demo01", "demo02", "demo03", "demo04"]


async def test_filter_by_node_set_group_and_words(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash", *"demo[01-03]")
        assert table(app).rows_shown == ["demo01", "demo02", "demo03"]
        await pilot.press("enter")
        assert table(app).has_focus
        assert "filter: demo[01-03]" in str(table(app).border_subtitle)
        await pilot.press("slash")
        bar = app.screen.query_one(FilterBar)
        assert bar.has_focus
        bar.value = "@rack-a"
        await pilot.pause()
        assert len(table(app).rows_shown) == 4
        bar.value = "down"
        await pilot.pause()
        assert table(app).rows_shown == ["demo05"]
        await pilot.press("escape")
        assert len(table(app).rows_shown) == 8
        assert table(app).has_focus


async def test_a_kept_filter_hides_its_bar_and_esc_on_the_table_clears_it(services: FrozenServices) -> None:
    """The bar stayed on screen after Enter (3 rows of the table at 80x24) and Esc on the table did nothing."""
    app = make_app(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash", *"demo[01-03]", "enter")
        bar = app.screen.query_one(FilterBar)
        assert table(app).has_focus
        assert not bar.display  # the table's subtitle says "filter: demo[01-03]" instead
        assert table(app).rows_shown == ["demo01", "demo02", "demo03"]
        await pilot.press("escape")
        assert len(table(app).rows_shown) == 8
        assert "filter" not in str(table(app).border_subtitle)


async def test_target_prefills_the_filter(services: FrozenServices) -> None:
    app = make_app(services, target="demo[07-08]")
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        assert table(app).rows_shown == ["demo07", "demo08"]


async def test_enter_opens_the_node_and_esc_or_q_come_back(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("down", "enter")
        assert isinstance(app.screen, NodeScreen)
        assert app.screen.node == "demo02"
        gpus = app.screen.query_one(GpuTable)
        assert gpus.row_count == 8
        assert "450 W" in str(gpus.get_cell("3", "power"))
        await wait_until(pilot, lambda: app.screen.history is not None, what="the node's history")
        await pilot.press("down", "down")
        assert app.screen.gpu_index == 2
        assert app.screen.query_one(GpuDetail).gpu.index == 2
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        assert table(app).selected_node == "demo02"
        await pilot.press("enter")
        assert isinstance(app.screen, NodeScreen)
        await pilot.press("q")
        assert isinstance(app.screen, MainScreen)
        app.push_screen(NodeScreen("demo05"))  # a down node says why
        await pilot.pause()
        assert "did not answer" in str(app.screen.query_one("#node-summary").render())
        assert app.screen.query_one(GpuTable).row_count == 0
        await pilot.press("escape", "q")
    assert app.return_code == 0


async def test_question_mark_lists_every_key(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(80, 40)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#keys", Static).content, width=120)
        for expected in (
            "Factory",
            "Node screen",
            "Filter bar",
            "Everywhere",
            "sort by the next column",
            "reverse the sort",
            "drain the node",
            "resume a drained node",
            "set the power cap",
            "filter by node set",
            "jobs and events",
            "back to the factory",
            "quit",
            "Esc q",
            "Ctrl-C",
            "quit (exit 130)",
            "Home g",
            "?",
        ):
            assert expected in text, expected
        await pilot.press("q")  # closes the help, does not quit
        assert isinstance(app.screen, MainScreen)


@pytest.mark.parametrize("first", [[], ["question_mark"], ["d"]], ids=["main", "help", "dialog"])
async def test_ctrl_c_quits_from_anywhere_with_status_130(services: FrozenServices, first: list[str]) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press(*first, "ctrl+c")
        await pilot.pause()
        assert app.return_code == 130  # docs/cli.md: interrupted (Ctrl-C) is 130; `q` is 0
    assert services.calls == []


async def test_drain_asks_for_a_reason_and_confirmation(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        assert "Drain demo01?" in app.screen.question
        await pilot.press("escape")
        assert services.calls == []
        await pilot.press("d", *"bad fan")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the drain call")
        assert services.calls == [("drain", "demo01", "bad fan")]
        await wait_until(pilot, lambda: cell(app, "demo01", "flags") == "drained", what="demo01 shown drained")
        await pilot.press("down", "down", "d")  # demo03 is drained already: nothing to ask
        assert isinstance(app.screen, MainScreen)
        assert len(services.calls) == 1


async def test_resume_needs_confirmation(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("down", "down", "r")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.click("#cancel")
        assert services.calls == []
        await pilot.press("r")
        await when_armed(pilot)
        await pilot.click("#confirm")
        await wait_until(pilot, lambda: services.calls, what="the resume call")
        assert services.calls == [("resume", "demo03")]
        await wait_until(pilot, lambda: cell(app, "demo03", "flags") == "", what="demo03 shown schedulable")


async def test_power_cap_shows_the_range_clamps_and_reports(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p", *"450", "escape")  # cancelled: nothing sent
        assert isinstance(app.screen, MainScreen)
        table(app).move_cursor(row=4)  # demo05, down: nothing to cap
        await pilot.press("p")
        assert isinstance(app.screen, MainScreen)
        assert "demo05 is not reachable" in last_notice(app)
        assert services.calls == []
        table(app).move_cursor(row=0)
        await pilot.press("p")
        assert isinstance(app.screen, PowerCapScreen)
        assert (app.screen.low, app.screen.high) == (200.0, 700.0)
        assert app.screen.query_one("#confirm").disabled
        await pilot.press(*"150")
        assert "clamped to 200 W" in str(app.screen.query_one("#note").render())
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the cap call")
        assert services.calls == [("set_power_cap", "demo01", 150.0)]
        await wait_until(pilot, lambda: "capped" in last_notice(app), what="the result toast")
        assert "8 GPUs capped at 200 W (clamped from 150 W)" in last_notice(app)


async def test_actions_from_the_node_screen(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("enter", "p", *"300")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the cap call")
        assert services.calls == [("set_power_cap", "demo01", 300.0)]
        assert isinstance(app.screen, NodeScreen)


async def test_read_only_hides_and_disables_actions(services: FrozenServices) -> None:
    app = make_app(services, read_only=True)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("d", "r", "p")
        assert isinstance(app.screen, MainScreen)
        assert table(app).border_subtitle == "read-only"
        footer_keys = {b.binding.action for b in app.screen.active_bindings.values() if b.enabled}
        assert not footer_keys & {"drain", "resume", "power_cap"}
        await pilot.press("enter", "d", "p")
        assert isinstance(app.screen, NodeScreen)
        assert services.calls == []
        await pilot.press("question_mark")
        text = plain(app.screen.query_one("#keys", Static).content)
        assert "Drain" not in text
        assert "read-only" in text


async def test_a_node_going_down_shows_at_the_next_snapshot(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        nodes = list(services.current.nodes)
        nodes[0] = NodeSample(node="demo01", time=nodes[0].time, state="down", error="agent", message="agent exited")
        services.current = dataclasses.replace(services.current, nodes=tuple(nodes))
        app.request_snapshot()
        await wait_until(pilot, lambda: cell(app, "demo01", "state") == "down", what="demo01 down")
        assert cell(app, "demo01", "util") == "agent"


class SlowServices(FrozenServices):
    """A source that blocks until released, like a store behind a slow disk."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.entered = threading.Event()

    def snapshot(self):
        self.entered.set()
        self.release.wait(10)
        return super().snapshot()


async def test_a_slow_source_never_freezes_the_ui() -> None:
    services = SlowServices()
    app = make_app(services)
    async with app.run_test() as pilot:
        await wait_until(pilot, services.entered.is_set, what="the first request")
        await pilot.press("question_mark")  # the UI answers while the worker waits
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        app.request_snapshot()  # merged: no second request while one is in flight
        app.request_snapshot()
        services.release.set()
        await first_snapshot(pilot)
        assert services.snapshots_served == 1


class BrokenServices(FrozenServices):
    def snapshot(self):
        raise RuntimeError("store unreadable")


async def test_a_failing_source_is_reported_once_and_the_app_lives() -> None:
    app = RecordingApp(BrokenServices())
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.notified, what="the failure toast")
        assert "store unreadable" in last_notice(app)
        app.request_snapshot()
        await pilot.pause()
        assert len(app.notified) == 1
        assert isinstance(app.screen, MainScreen)


async def test_a_bad_prices_file_is_named_once_in_a_notification() -> None:
    bad = "prices.csv:2: bad price row: Invalid isoformat string: '[not a time]'"  # no markup
    app = RecordingApp(FrozenServices(fixed_snapshot(price_error=bad)))
    async with app.run_test() as pilot:
        await wait_until(pilot, lambda: app.notified, what="the price toast")
        assert bad in last_notice(app)
        app.request_snapshot()
        await wait_until(pilot, lambda: app.snapshots_taken >= 2, what="a second snapshot")
        assert len(app.notified) == 1


class StallingServices(FrozenServices):
    """Serves one snapshot, then hangs (a collector or store that stopped answering) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.stalled = threading.Event()

    def snapshot(self):
        if self.snapshots_served >= 1:
            self.stalled.set()
            self.release.wait(10)
        return super().snapshot()


async def test_a_stalled_source_shows_its_data_growing_old_against_the_wall_clock() -> None:
    services = StallingServices()
    now = [T0 + 1]
    app = make_app(services, clock=lambda: now[0])
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await first_snapshot(pilot)
            assert "11:06:40Z" in screen_text(app)
            app.request_snapshot()
            await wait_until(pilot, services.stalled.is_set, what="the source to hang")
            now[0] = T0 + 12  # no new snapshot comes: only the header's own timer can show the age
            await wait_until(pilot, lambda: "data 12 s old" in screen_text(app), what="the header to say stale")
            assert app.snapshots_taken == 1
            assert isinstance(app.screen.query_one(FactoryHeader), FactoryHeader)
    finally:
        services.release.set()


async def test_a_node_that_never_answered_shows_no_seen_time() -> None:
    snap = fixed_snapshot()
    refused = NodeSample(node="demo04", time=snap.time, state="down", error="refused", message="connection refused")
    services = FrozenServices(
        dataclasses.replace(snap, nodes=tuple(refused if n.node == "demo04" else n for n in snap.nodes))
    )
    app = make_app(services)
    async with app.run_test(size=(120, 30)) as pilot:
        await first_snapshot(pilot)
        app.push_screen(NodeScreen("demo04"))
        await pilot.pause()
        summary = str(app.screen.query_one("#node-summary").render())
        assert "refused" in summary
        assert "seen" not in summary  # the snapshot's own time is not when the node was seen
        await pilot.press("escape")
        app.push_screen(NodeScreen("demo05"))  # down after answering: its last sample's time stays
        await pilot.pause()
        assert "seen 11:06:28Z" in str(app.screen.query_one("#node-summary").render())


async def test_dialog_keys_q_and_n_cancel_y_confirms(services: FrozenServices, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(GuardedDialog, "ARM_DELAY_S", 0.0)  # keys one by one: not about the arming delay
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("down", "down", "r")  # demo03 is drained
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("r", "n")
        assert isinstance(app.screen, MainScreen)
        assert services.calls == []
        await pilot.press("up", "d")  # demo02; typing the reason: q, y and n are letters
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press(*"quiet yn")
        assert isinstance(app.screen, ConfirmScreen)
        assert app.screen.query_one("#reason").value == "quiet yn"
        await pilot.press("tab", "q")  # on a button q cancels
        assert isinstance(app.screen, MainScreen)
        await pilot.press("p", *"q45")  # in the watts input q types nothing; Esc cancels
        assert isinstance(app.screen, PowerCapScreen)
        assert app.screen.query_one("#watts").value == "45"
        await pilot.press("tab", "tab", "q")
        assert isinstance(app.screen, MainScreen)
        assert services.calls == []
        await pilot.press("down", "r")
        await confirm_by_keys(pilot)
        await wait_until(pilot, lambda: services.calls, what="the resume call")
        assert services.calls == [("resume", "demo03")]


async def test_a_dialog_footer_shows_the_dialog_keys(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("down", "down", "r")
        footer = screen_text(app).splitlines()[-1]
        assert "Esc Cancel" in footer
        assert "n No" in footer
        assert "Yes" not in footer  # no letter confirms: a typed `yes` would
        assert "Drain" not in footer
        assert "Sort" not in footer


async def test_resume_on_a_node_that_is_not_drained_says_so(services: FrozenServices) -> None:
    app = RecordingApp(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("r")  # demo01 is schedulable
        assert isinstance(app.screen, MainScreen)
        assert last_notice(app) == "demo01 is not drained."
        assert services.calls == []


async def test_power_cap_says_why_zero_or_negative_is_refused(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        await pilot.press("p")
        for typed in ("0", "-5"):
            app.screen.query_one("#watts").value = ""
            await pilot.press(*typed)
            note = str(app.screen.query_one("#note").render())
            assert note == f"{typed} W is not a cap: type a positive number of watts"
            await pilot.press("enter")
            assert isinstance(app.screen, PowerCapScreen)
        assert services.calls == []


async def test_the_key_list_has_no_raw_table_bindings(services: FrozenServices) -> None:
    app = make_app(services)
    async with app.run_test(size=(80, 50)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        text = plain(app.screen.query_one("#keys", Static).content, width=120)
        for raw in ("cursor_up", "page_up_rows", "pagedown", "Open"):
            assert raw not in text, raw
        assert "Dialogs" in text
        assert "no (drain, resume" in text
        assert "yes (drain, resume" not in text  # no letter confirms a dialog: a typed `yes` would
