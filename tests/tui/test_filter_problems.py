"""A filter that names no node says why, in the CLI's words, and `rack X` matches the rack, not a name with an X."""

from __future__ import annotations

import dataclasses

import pytest
from factory_data import FrozenServices, fixed_snapshot
from pilot_helpers import RecordingApp, first_snapshot, last_notice, wait_until

from factoryctl.tui.view import filter_nodes, node_rows
from factoryctl.tui.widgets.node_table import NodeTable


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("@nosuch", "unknown group `@nosuch`."),
        ("@rack-", "unknown group `@rack-`. did you mean `@rack-a`?"),
        ("demo[01", "`demo[01` is not a valid node set"),
        ("demo[20-29]", "`demo[20-29]` matches no node in the inventory."),
    ],
)
def test_a_node_set_naming_no_node_says_what_the_cli_says(text: str, said: str) -> None:
    snap = fixed_snapshot()
    result = filter_nodes(node_rows(snap), text, snap.groups)
    assert result.rows == []
    assert result.problem is not None
    assert said in result.problem


def test_a_good_node_set_has_no_problem() -> None:
    snap = fixed_snapshot()
    result = filter_nodes(node_rows(snap), "@rack-a!demo02", snap.groups)
    assert [r.name for r in result.rows] == ["demo01", "demo03", "demo04"]
    assert result.problem is None


def test_rack_words_match_the_rack_not_a_letter_of_the_name() -> None:
    snap = fixed_snapshot()
    nodes = (dataclasses.replace(snap.nodes[0], node="b01"), *snap.nodes[1:])
    snap = dataclasses.replace(snap, nodes=nodes, racks={**snap.racks, "b01": "c"})
    rows = node_rows(snap)
    assert "b01" not in [r.name for r in filter_nodes(rows, "rack b").rows]
    assert [r.name for r in filter_nodes(rows, "rack c").rows] == ["b01"]
    assert len(filter_nodes(rows, "rack b").rows) == 4
    assert [r.name for r in filter_nodes(rows, "rack a drained").rows] == ["demo03"]
    assert len(filter_nodes(rows, "rack").rows) == 8  # still being typed: every node has a rack


async def test_the_filter_bar_says_why_a_typo_shows_no_node_and_a_kept_one_notifies() -> None:
    app = RecordingApp(FrozenServices())
    async with app.run_test(size=(120, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        await pilot.press("slash", *"@nosuch")
        assert table.rows_shown == []
        assert "unknown group `@nosuch`" in str(table.border_subtitle)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.notified, what="the filter's notification")
        assert "unknown group `@nosuch`" in last_notice(app)
        await pilot.press("escape")
        assert "unknown group" not in str(table.border_subtitle)
