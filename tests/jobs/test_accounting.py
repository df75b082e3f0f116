"""A job's energy is its own GPUs' over its run, and its cost each price interval's energy at that interval's price."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.jobs.accounting import with_energy
from factoryctl.model.jobs import GpuAllocation, Job, JobSpec, JobState, Rank
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0
HOUR = 3600.0


def _store(tmp_path: Path) -> Store:
    """n1's GPU 0 draws 500 W and GPU 1 draws 100 W for two hours, sampled every 10 s with their counters."""
    store = Store(tmp_path / "acc.db")
    for step in range(int(2 * HOUR) // 10 + 1):
        gpus = tuple(GpuSample("n1", g, power_w=w, energy_j=w * step * 10) for g, w in ((0, 500.0), (1, 100.0)))
        store.write([NodeSample("n1", T0 + step * 10, gpus=gpus)])
    return store


def _job(gpus: tuple[int, ...], start: float, end: float | None) -> Job:
    return Job(
        "a1", JobSpec(len(gpus)), T0, JobState.SUCCEEDED if end else JobState.RUNNING, started_at=start, ended_at=end,
        allocation=(GpuAllocation("n1", len(gpus)),), ranks=(Rank(0, "n1", gpus=gpus),),
    )  # fmt: skip


def test_energy_counts_only_the_jobs_own_gpus_over_its_run(tmp_path: Path) -> None:
    store = _store(tmp_path)
    job = with_energy(store, _job((0,), T0, T0 + HOUR), T0 + 2 * HOUR)
    assert job.energy_kwh == pytest.approx(0.5, rel=0.001)  # GPU 0 alone: 500 W for an hour
    running = with_energy(store, _job((0, 1), T0 + HOUR, None), T0 + 1.5 * HOUR)
    assert running.energy_kwh == pytest.approx(0.3, rel=0.001)  # both GPUs, half an hour so far
    assert running.cost is None  # no prices given


def test_cost_sums_each_intervals_energy_at_its_price(tmp_path: Path) -> None:
    store = _store(tmp_path)
    prices = [(T0, T0 + HOUR, 100.0), (T0 + HOUR, T0 + 2 * HOUR, -20.0)]  # per MWh; negative prices are real
    job = with_energy(store, _job((0,), T0 + 0.5 * HOUR, T0 + 1.5 * HOUR), T0 + 2 * HOUR, prices)
    assert job.cost == pytest.approx(0.25 * 100 / 1000 + 0.25 * -20 / 1000, rel=0.002)
    gap = [(T0, T0 + HOUR, 100.0)]  # the run's second half has no price: no cost rather than half of one
    assert with_energy(store, _job((0,), T0 + 0.5 * HOUR, T0 + 1.5 * HOUR), T0, gap).cost is None


def test_a_gpu_without_readings_leaves_the_energy_unknown(tmp_path: Path) -> None:
    store = _store(tmp_path)
    assert with_energy(store, _job((0, 5), T0, T0 + HOUR), T0 + HOUR).energy_kwh is None
    assert with_energy(store, _job((0,), T0 + 5 * HOUR, T0 + 6 * HOUR), T0).energy_kwh is None
