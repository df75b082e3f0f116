"""The embedded collector's in-memory history."""

from __future__ import annotations

import dataclasses

from factory_data import node

from factoryctl.live.history import RecentHistory


def test_factory_power_is_a_bounded_ring() -> None:
    history = RecentHistory(1.0, factory_points=3)
    for watts in (1.0, 2.0, 3.0, 4.0):
        history.record_factory(watts)
    assert history.factory_series() == (2.0, 3.0, 4.0)


def test_per_gpu_series_keep_order_and_gaps() -> None:
    history = RecentHistory(1.0, per_node=2)
    first = node(1, gpus=2)
    history.record_node(first)
    gpus = list(first.gpus)
    gpus[1] = dataclasses.replace(gpus[1], power_w=None)
    history.record_node(dataclasses.replace(first, gpus=tuple(gpus)))
    history.record_node(dataclasses.replace(first, gpus=tuple(gpus)))
    result = history.node("demo01")
    assert [g.index for g in result.gpus] == [0, 1]
    assert len(result.gpus[0].power_w) == 2
    assert result.gpus[1].power_w == (None, None)
    assert result.gpus[0].utilization_pct[0] == first.gpus[0].utilization_pct


def test_unknown_node_and_gpu_changes() -> None:
    history = RecentHistory(1.0)
    assert history.node("nope").gpus == ()
    history.record_node(node(1, gpus=1))
    history.record_node(node(1, gpus=2))
    result = history.node("demo01")
    assert result.gpus[1].power_w[0] is None
    assert result.gpus[1].power_w[1] is not None
    assert history.node("demo01").gpu(5) is None
