"""Long names stay apart beside an odd one, and the focused row stays in view (review of session 22).

1,984 `gpu-rNN-nNN.dc1.example.com` nodes beside one `mgmt` (or `sim01..sim40`) all read `gpu-r…le.com` at 80
columns: the prefix and suffix were only cut where every name shared them, so one odd name cancelled them and the
middle, the part that tells the nodes apart, went. A node's own events cut its name to `gpu-r10-n1…example.com`.
Shrinking the terminal left the cursor's row out of view (`d` then drained a node the screen did not show), and a
filter kept the cursor's row number rather than its node.
"""

from __future__ import annotations

import dataclasses

from factory_data import T0, FrozenServices, gpu
from pilot_helpers import first_snapshot, plain, screen_text, wait_until

from factoryctl.live.services import DashboardEvent, FactorySnapshot
from factoryctl.model.telemetry import NodeSample
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.feed_lists import EventsRenderable
from factoryctl.tui.renderables.node_rows import node_names
from factoryctl.tui.text import elide_name, name_affixes
from factoryctl.tui.view import NodeRow
from factoryctl.tui.widgets.node_table import NodeTable


def fqdn(index: int) -> str:
    return f"gpu-r{index // 32 + 1:02d}-n{index % 32 + 1:02d}.dc1.example.com"


def fleet(names: list[str]) -> FactorySnapshot:
    """Up nodes of 8 GPUs with these names, no events."""
    nodes = tuple(
        NodeSample(
            node=name,
            time=T0,
            state="up",
            agent_version="0.1.0",
            backend="sim",
            gpus=tuple(dataclasses.replace(gpu(i % 90 + 1, g), node=name) for g in range(8)),
        )
        for i, name in enumerate(names)
    )
    return FactorySnapshot(
        factory="big",
        time=T0,
        nodes=nodes,
        racks={name: name[4:7] for name in names},
        drained=frozenset(),
        budget_kw=len(names) * 5.0,
        interval_s=30.0,
        power_history_w=(),
        events=(),
        groups={},
    )


def shown_names(names: list[str], width: int) -> dict[str, str]:
    """Each name as the node column shows it in `width` cells."""
    rows = [
        NodeRow(NodeSample(node=n, time=T0, state="up", agent_version="0.1.0", backend="sim"), None, False)
        for n in names
    ]
    return node_names(rows, width)


# ---------------------------------------------------------------------------------------------- 1: an odd name


def test_one_short_name_does_not_cut_the_middle_of_every_other() -> None:
    fqdns = [fqdn(i) for i in range(1984)]
    for odd in (["mgmt"], [f"sim{i:02d}" for i in range(1, 41)]):
        shown = shown_names(fqdns + odd, 12)
        assert len(set(shown.values())) == len(fqdns) + len(odd)
        assert shown[fqdn(0)] == "gpu-r01-n01…"
        assert shown[fqdn(1983)] == "gpu-r62-n32…"
        assert all(shown[name] == name for name in odd)
        narrow = shown_names(fqdns + odd, 8)
        assert narrow[fqdn(0)] == "…r01-n01"  # the shared `gpu-` and domain go first
        assert len({narrow[n] for n in fqdns}) == len(fqdns)


def test_names_that_differ_in_the_middle_still_differ_beside_an_odd_one() -> None:
    names = [f"rack{r:02d}-gpu-node-with-a-long-suffix" for r in range(1, 21)] + ["mgmt", "login-1"]
    shown = shown_names(names, 12)
    assert len(set(shown.values())) == len(names), shown
    assert shown[names[0]] == "rack01-gpu-…"
    assert name_affixes(names)["mgmt"] == (0, 0)


def test_a_lone_host_name_loses_its_domain_before_its_host() -> None:
    name = "gpu-r10-n13.dc1.example.com"
    assert elide_name(name, 24) == "gpu-r10-n13.dc1.example…"
    assert elide_name(name, 12) == "gpu-r10-n13…"
    assert elide_name(name, 8) == "…r10-n13"
    assert elide_name("gpu-node-with-a-long-common-prefix-0001", 16) == "gpu-nod…fix-0001"  # no domain: its middle


async def test_at_80x24_the_table_tells_fqdn_nodes_apart_beside_mgmt() -> None:
    app = make_app(FrozenServices(fleet([fqdn(i) for i in range(64)] + ["mgmt"])))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        text = screen_text(app)
        assert "gpu-r01-n01…" in text, text
        assert "gpu-r01-n02…" in text, text


def test_an_event_line_keeps_the_host_beside_an_odd_name() -> None:
    message = "down: the agent did not answer within the deadline of 10 s"
    events = [DashboardEvent(T0 - i, name, "node_down", message, "error") for i, name in enumerate([fqdn(12), "mgmt"])]
    events.append(DashboardEvent(T0 - 9, fqdn(13), "node_down", message, "error"))
    lines = plain(EventsRenderable(events), width=84).splitlines()
    assert any("gpu-r01-n13" in line for line in lines), lines
    assert any("gpu-r01-n14" in line for line in lines), lines


def test_event_names_that_differ_only_in_the_middle_stay_apart_beside_an_odd_name() -> None:
    message = "down: the agent did not answer within the deadline of 10 s"
    names = [f"rack-{rack}-node-0001.example.com" for rack in ("alpha", "bravo")] + ["mgmt"]
    events = [DashboardEvent(T0 - i, name, "node_down", message, "error") for i, name in enumerate(names)]
    lines = plain(EventsRenderable(events), width=84).splitlines()
    assert any("alpha" in line for line in lines), lines
    assert any("bravo" in line for line in lines), lines


# ------------------------------------------------------------------------------------- 4: the node's own events


def test_the_node_screens_events_keep_the_nodes_digits() -> None:
    name = "gpu-r10-n13.dc1.example.com"
    events = [DashboardEvent(T0, name, "ecc", "GPU 2: 2 uncorrectable ECC errors on the last scrub", "error")]
    for width in (76, 56):
        line = plain(EventsRenderable(events, node=name), width=width).splitlines()[0]
        assert "r10-n13" in line, (width, line)


# ----------------------------------------------------------------------------------- 2, 3: the cursor in view


def cursor_in_view(table: NodeTable) -> bool:
    top = round(table.scroll_y)
    return top <= table.cursor_row < top + table.scrollable_content_region.height - 1


async def test_shrinking_the_terminal_keeps_the_cursors_row_in_view() -> None:
    app = make_app(FrozenServices(fleet([fqdn(i) for i in range(200)])))
    async with app.run_test(size=(100, 50)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        table.move_cursor(30)
        await pilot.pause()
        assert cursor_in_view(table)
        await pilot.resize_terminal(80, 24)
        await wait_until(pilot, lambda: app.size == (80, 24), what="the resize")
        await pilot.pause()
        assert table.selected_node == fqdn(30)
        assert cursor_in_view(table), (table.cursor_row, table.scroll_y)
        assert "gpu-r01-n31" in screen_text(app)


async def test_a_scroll_by_wheel_or_scrollbar_survives_the_next_refreshes() -> None:
    """The view moved away from the cursor (mouse wheel, scrollbar) stays where it was put, refresh after refresh."""
    services = FrozenServices(fleet([fqdn(i) for i in range(200)]), interval_s=0.5)
    app = make_app(services)
    async with app.run_test(size=(100, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        table.scroll_to(y=40, animate=False)
        await pilot.pause()
        before = app.snapshots_taken
        await wait_until(pilot, lambda: app.snapshots_taken >= before + 2, timeout=10, what="two refreshes")
        await pilot.pause()
        assert (table.cursor_row, round(table.scroll_y)) == (0, 40)


async def test_a_filter_keeps_the_cursors_node_or_goes_to_the_first_match() -> None:
    app = make_app(FrozenServices(fleet([fqdn(i) for i in range(200)])))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        table.move_cursor(70)  # gpu-r03-n07
        await pilot.press("slash", *"r03", "enter")
        await wait_until(pilot, lambda: table.row_count == 32, what="the filter")
        assert table.selected_node == fqdn(70)
        assert cursor_in_view(table)
        await pilot.press("escape")
        await wait_until(pilot, lambda: table.row_count == 200, what="the filter cleared")
        table.move_cursor(20)  # gpu-r01-n21: no match
        await pilot.pause()
        await pilot.press("slash", *"r04", "enter")
        await wait_until(pilot, lambda: table.row_count == 32, what="the filter")
        assert table.selected_node == fqdn(96)  # gpu-r04-n01, the first match
        assert cursor_in_view(table)
        assert round(table.scroll_y) == 0
