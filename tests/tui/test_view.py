"""The header's arithmetic and the node table's sort and filter, on frozen data (no App)."""

from __future__ import annotations

import dataclasses

import pytest
from factory_data import fixed_snapshot

from factoryctl.live.services import JobLine
from factoryctl.tui.view import (
    SORT_ORDER,
    filter_nodes,
    gpu_busy,
    jobs_summary,
    natural_key,
    node_rows,
    sort_rows,
    summarize,
)


def test_summary_counts_states_flags_and_power() -> None:
    snap = fixed_snapshot()
    s = summarize(snap)
    assert (s.nodes, s.up, s.degraded, s.down) == (8, 6, 1, 1)
    assert s.drained == 1
    assert s.unhealthy == 3  # the down node, the stale (errored) node, the one with ECC errors
    assert s.gpus_total == 56  # the down node reports no GPUs
    assert 0 < s.gpus_busy < s.gpus_total
    up_power = sum(n.power_w or 0 for n in snap.nodes if n.state != "down")
    assert s.power_kw == pytest.approx(up_power / 1000)
    assert s.budget_kw == 40.0
    assert s.energy_per_hour_kwh == pytest.approx(sum(snap.power_history_w) / len(snap.power_history_w) / 1000)
    assert s.last_sample == snap.time
    assert s.price is None
    assert s.queue_length == 2  # the waiting jobs (the fixed factory has two)


def test_summary_counts_only_the_drained_nodes_it_shows() -> None:
    """`dash @rack-a`: the store's drained flags of the other nodes are not this view's (docs: drained, of TARGET)."""
    snapshot = fixed_snapshot(count=4, drained=frozenset({"demo02", "demo05", "demo07"}))
    assert summarize(snapshot).drained == 1


def test_summary_of_an_empty_factory_invents_nothing() -> None:
    s = summarize(fixed_snapshot(nodes=(), power_history_w=()))
    assert s.power_kw is None
    assert s.energy_per_hour_kwh is None
    assert s.last_sample is None


def test_busy_means_utilization_or_a_process() -> None:
    g = fixed_snapshot().nodes[0].gpus[0]
    assert gpu_busy(dataclasses.replace(g, utilization_pct=50.0, processes=()))
    assert not gpu_busy(dataclasses.replace(g, utilization_pct=0.0, processes=()))
    assert not gpu_busy(dataclasses.replace(g, utilization_pct=None, processes=()))


def test_a_node_not_answered_yet_is_counted_as_connecting_not_as_seen() -> None:
    from factoryctl.model.telemetry import NodeSample

    snap = fixed_snapshot()
    waiting = NodeSample(node="demo09", time=snap.time + 60, state="connecting", message="connecting…")
    s = summarize(dataclasses.replace(snap, nodes=(*snap.nodes, waiting)))
    assert (s.nodes, s.up, s.degraded, s.down, s.connecting) == (9, 6, 1, 1, 1)
    assert s.unhealthy == 3  # not answering yet is not a fault
    assert s.last_sample == snap.time  # the newest *sample*, not when we last asked the waiting node
    order = [
        r.sample.state for r in sort_rows(node_rows(dataclasses.replace(snap, nodes=(waiting, *snap.nodes))), "state")
    ]
    assert order == ["down", "degraded", "connecting", *["up"] * 6]  # trouble first, then the not-yet-known


def test_natural_order() -> None:
    assert sorted(["n10", "n2", "n1"], key=natural_key) == ["n1", "n2", "n10"]


@pytest.mark.parametrize("column", SORT_ORDER)
def test_every_column_sorts_and_reverses(column: str) -> None:
    rows = node_rows(fixed_snapshot())
    forward = [r.name for r in sort_rows(rows, column)]
    backward = [r.name for r in sort_rows(rows, column, reverse=True)]
    assert sorted(forward) == sorted(r.name for r in rows)
    assert forward != backward or column == "rack"


def test_sort_by_power_puts_the_down_node_last_descending() -> None:
    rows = sort_rows(node_rows(fixed_snapshot()), "power", reverse=True)
    powers = [r.sample.power_w for r in rows if r.sample.power_w is not None]
    assert powers == sorted(powers, reverse=True)
    assert rows[-1].name == "demo05"


def test_sort_by_state_shows_trouble_first() -> None:
    rows = sort_rows(node_rows(fixed_snapshot()), "state")
    assert [r.name for r in rows[:2]] == ["demo05", "demo06"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", 8),
        ("demo[01-03]", 3),
        ("demo[01-08]!demo05", 7),
        ("demo01,demo07", 2),
        ("@rack-a", 4),
        ("@all", 8),
        ("down", 1),
        ("drained", 1),
        ("unhealthy", 3),
        ("rack b", 4),
        ("DEMO0", 8),
        ("nothing-like-it", 0),
        ("demo[", 0),  # not a valid node set: no node, and the filter says why (test_filter_problems.py)
    ],
)
def test_filter(text: str, expected: int) -> None:
    snap = fixed_snapshot()
    assert len(filter_nodes(node_rows(snap), text, snap.groups).rows) == expected


def test_filter_by_words_needs_every_word() -> None:
    snap = fixed_snapshot()
    names = [r.name for r in filter_nodes(node_rows(snap), "rack a drained", snap.groups).rows]
    assert names == ["demo03"]


def test_jobs_summary_counts_starting_as_running_and_deferred_as_waiting() -> None:
    states = ["RUNNING", "STARTING", "PENDING", "DEFERRED", "DEFERRED", "COMPLETED"]
    jobs = tuple(JobLine(id=str(i), name=f"j{i}", state=state, num_gpus=1) for i, state in enumerate(states))
    assert jobs_summary(jobs) == "2 running, 3 waiting"
    assert jobs_summary(None) is None
