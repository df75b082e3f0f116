"""Long node names stay distinguishable and never push the flags out of view.

Nodes named `gpu-node-with-a-long-common-prefix-[0001-0003]` all read `gpu-node-with-a-long-co…` (the part that
tells them apart cut away); 19-character names (`gpu-a01.dc1.example`) at 80 columns cropped Flags to `unh`; at
250 columns the names were still cut at 24 characters and the rack at 4; the events panel cut the node's name and
dropped what happened. Now a name keeps what no other name shares, the node column takes the room the terminal
has, the Flags column stays in view at 80 columns, and an event's line shortens its node rather than its words.
"""

from __future__ import annotations

import dataclasses

import pytest
from factory_data import fixed_snapshot
from pilot_helpers import first_snapshot, plain, wait_until

from factoryctl.live.services import FactorySnapshot
from factoryctl.tui.app import make_app
from factoryctl.tui.renderables.feed_lists import EventsRenderable
from factoryctl.tui.renderables.node_rows import NodeRowsRenderable
from factoryctl.tui.text import common_affixes, elide_name
from factoryctl.tui.view import node_rows
from factoryctl.tui.widgets.node_table import NodeTable


def long_prefix(index: int) -> str:
    return f"gpu-node-with-a-long-common-prefix-{index:04d}"


def fqdn(index: int) -> str:
    return f"gpu-{'ab'[index > 4]}{index:02d}.dc1.example"


def renamed(name_of, rack_of=lambda i: f"rack-{'ab'[i > 4]}") -> FactorySnapshot:
    """The fixed 8-node factory (demo03 drained, demo07 unhealthy) with its nodes named `name_of(index)`."""
    snapshot = fixed_snapshot()
    names = {f"demo{i:02d}": name_of(i) for i in range(1, 9)}
    nodes = tuple(
        dataclasses.replace(
            n, node=names[n.node], gpus=tuple(dataclasses.replace(g, node=names[n.node]) for g in n.gpus)
        )
        for n in snapshot.nodes
    )
    events = tuple(dataclasses.replace(e, node=names.get(e.node, e.node)) for e in snapshot.events)
    return dataclasses.replace(
        snapshot,
        nodes=nodes,
        racks={names[n]: rack_of(int(n[4:])) for n in snapshot.racks},
        drained=frozenset(names[n] for n in snapshot.drained) | {names["demo07"]},
        events=events,
        groups={},
    )


def table_lines(snapshot: FactorySnapshot, width: int) -> list[str]:
    return plain(NodeRowsRenderable(node_rows(snapshot)), width=width).splitlines()


def line_of(lines: list[str], text: str) -> str:
    return next(line for line in lines if text in line)


def test_shared_parts_are_found_at_word_boundaries() -> None:
    assert common_affixes([long_prefix(i) for i in (1, 2, 3)]) == (35, 0)  # `...-prefix-`: `0001` stays whole
    assert common_affixes([fqdn(i) for i in (1, 2, 5)]) == (4, 12)  # `gpu-` and `.dc1.example`
    assert common_affixes(["n1", "n2"]) == (0, 0)
    assert common_affixes(["lonely"]) == (0, 0)


@pytest.mark.parametrize(
    ("name", "width", "shown"),
    [
        (long_prefix(2), 13, "gpu-node…0002"),
        (long_prefix(2), 8, "gpu…0002"),
        (fqdn(1), 13, "gpu-a01.dc1.…"),
        (fqdn(1), 8, "gpu-a01…"),
        (fqdn(1), 19, fqdn(1)),
    ],
)
def test_a_name_too_long_keeps_what_tells_it_apart(name: str, width: int, shown: str) -> None:
    names = [long_prefix(i) for i in (1, 2, 3)] if name.startswith("gpu-node") else [fqdn(i) for i in (1, 2, 5)]
    assert elide_name(name, width, common_affixes(names)) == shown


def test_a_lone_long_name_loses_its_middle_not_its_end() -> None:
    assert elide_name(long_prefix(1), 16) == "gpu-nod…fix-0001"


@pytest.mark.parametrize("name_of", [long_prefix, fqdn])
def test_at_80_columns_names_differ_and_the_flags_show_whole(name_of) -> None:
    lines = table_lines(renamed(name_of), 80)
    shown = [line.split()[0] for line in lines[1:] if line.strip()]
    assert len(set(shown)) == 8, shown
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert "Flags" in lines[0]
    assert line_of(lines, "0007" if name_of is long_prefix else "b07").split()[-2:] == ["unhlth", "dr"]
    assert line_of(lines, "03").split()[-1] == "drained"


def test_a_wide_terminal_shows_whole_names_and_racks() -> None:
    lines = table_lines(renamed(long_prefix), 250)
    row = line_of(lines, long_prefix(1))
    assert row.split()[-1] == "rack-a"
    assert "…" not in "".join(lines)


def test_an_event_line_shortens_its_node_not_the_event() -> None:
    snapshot = renamed(long_prefix)
    lines = plain(EventsRenderable(snapshot.events), width=60).splitlines()
    ecc = line_of(lines, "ECC")
    assert ecc.rstrip().endswith("GPU 2: 2 uncorrectable ECC errors"), ecc
    assert "0007" in ecc, ecc  # the node that had them


async def test_the_table_gives_long_names_the_room_the_terminal_has() -> None:
    from factory_data import FrozenServices

    app = make_app(FrozenServices(renamed(fqdn)))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        assert dict(table._columns)["node"] < len(fqdn(1))
        await pilot.resize_terminal(250, 24)
        await wait_until(pilot, lambda: dict(table._columns)["node"] == len(fqdn(1)), what="the whole names")
        assert dict(table._columns)["rack"] == len("rack-a")


async def test_with_more_nodes_than_rows_the_scrollbar_leaves_the_flags_in_view() -> None:
    """The vertical scrollbar takes a column once the rows overflow: the node column gives it back."""
    from factory_data import FrozenServices

    from factoryctl.tui.renderables.node_rows import line_width

    snapshot = fixed_snapshot(count=64)
    names = {n.node: f"gpu-a{i:02d}.dc1.example" for i, n in enumerate(snapshot.nodes)}
    snapshot = dataclasses.replace(
        snapshot,
        nodes=tuple(dataclasses.replace(n, node=names[n.node]) for n in snapshot.nodes),
        racks={names[n]: "rack-a" for n in snapshot.racks},
        drained=frozenset(),
        groups={},
    )
    app = make_app(FrozenServices(snapshot))
    async with app.run_test(size=(80, 24)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(NodeTable)
        assert table.show_vertical_scrollbar
        through_flags = line_width([c for c in table._columns if c[0] != "rack"])
        assert through_flags <= table.scrollable_content_region.width
