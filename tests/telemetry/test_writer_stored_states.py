"""The writer starts each node from the state its store holds: a node found unchanged is no `node_up`/`node_down`.

A restarted controller logged every node's state again right after `controller_start` (docs/cron.md's alert on
`--kind node_down` paged at every restart). Found the same (state and kind of reason), however long ago it was
stored, it logs nothing and keeps its stored `since`; found otherwise, it is a change as any. A node removed and added
again by reloads is judged afresh. A real store, on clocks the test moves.
"""

from __future__ import annotations

from pathlib import Path

from clocks import T0, Clocks, sample, writer_for

from factoryctl.errors import NodeError
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store

STORED_AT = T0 - 3 * 86400  # days before the restart


def refused(node: str) -> NodeError:
    return NodeError(node, "refused", f"10.0.0.9:22 refused the connection ({node})")


def store_with_states(tmp_path: Path) -> Store:
    """A store whose rows say: up1 up, down1 and down2 down (refused), all since days ago."""
    store = Store(tmp_path / "factory.db")
    store.write(
        states=[
            NodeState("up1", "up", STORED_AT, STORED_AT),
            NodeState("down1", "down", STORED_AT, None, "refused", refused("down1").message),
            NodeState("down2", "down", STORED_AT, None, "refused", refused("down2").message),
        ]
    )
    return store


def state_events(store: Store) -> list[tuple[str, str | None]]:
    return sorted((e.kind, e.node) for e in store.events(0) if e.kind.startswith("node_"))


def test_nodes_found_as_stored_log_nothing_and_others_log_their_change(tmp_path: Path) -> None:
    store = store_with_states(tmp_path)
    clocks = Clocks()
    writer = writer_for(store, clocks, ["up1", "down1", "down2", "new"])
    writer.offer(sample("up1", clocks.wall))
    writer.link_failed("down1", refused("down1"))
    writer.link_failed("down2", NodeError("down2", "timeout", "10.0.0.9:22 did not answer within 10 s"))
    writer.link_failed("new", refused("new"))
    writer.flush()
    assert state_events(store) == [("node_down", "down2"), ("node_down", "new")]
    stored = {state.node: state for state, _ in store.latest()}
    assert (stored["up1"].state, stored["up1"].since) == ("up", STORED_AT)
    assert (stored["down1"].state, stored["down1"].since, stored["down1"].error) == ("down", STORED_AT, "refused")
    assert (stored["down2"].error, stored["down2"].since) == ("timeout", clocks.wall)  # another reason: news
    assert writer.states()["up1"].since == STORED_AT
    clocks.tick(5)  # up1 goes silent after its first sample: a change from here on, as ever
    writer.flush()
    assert ("node_down", "up1") in state_events(store)
    store.close()


def test_a_node_removed_and_added_again_is_judged_afresh(tmp_path: Path) -> None:
    store = store_with_states(tmp_path)
    clocks = Clocks()
    writer = writer_for(store, clocks, ["up1", "down1"])
    writer.link_failed("down1", refused("down1"))
    writer.set_nodes(["up1"])  # a reload removes it, a later one adds it again
    writer.set_nodes(["up1", "down1"])
    writer.link_failed("down1", refused("down1"))
    writer.flush()
    assert state_events(store) == [("node_down", "down1")]
    store.close()
