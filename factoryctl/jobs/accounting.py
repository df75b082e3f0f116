"""A job's energy and cost: its GPUs' energy over its run, from the store's telemetry, priced interval by interval.

A job holds its GPUs alone (the executor gives each rank GPU indexes no other job holds), so the energy those GPUs
used between its start and its end (or now) is the job's, idle draw while it held them included, as an invoice
would count it. Read from the store the controller (or `telemetry collect`) writes; a node without samples in the
window gives no reading, and the job's energy is then unknown (null), never 0. The cost sums each price interval's
energy times its price (`power.price_source`, per MWh), so a job that ran through a price spike pays the spike.
"""

from __future__ import annotations

from collections.abc import Sequence

from factoryctl.model.energy_prices import PriceInterval, covering, priced
from factoryctl.model.jobs import Job
from factoryctl.model.telemetry import kwh_from_joules
from factoryctl.store.sqlite import Store


def _joules(store: Store, job: Job, since: float, until: float) -> float | None:
    """Joules of the job's GPUs in [since, until); None when a GPU of it has no reading there."""
    total: list[float] = []
    for rank in job.ranks:
        found = {
            gpu: (j, source) for node, gpu, j, source in store.energy([rank.node], since, until) if node == rank.node
        }
        for gpu in rank.gpus:
            joules, source = found.get(gpu, (0.0, "none"))
            if source == "none":
                return None
            total.append(joules)
    return sum(total)


def with_energy(store: Store, job: Job, now: float, prices: Sequence[PriceInterval] = ()) -> Job:
    """`job` with `energy_kwh` (and `cost`, when `prices` cover its run) from the store; unchanged if it never ran."""
    if job.started_at is None or not job.ranks:
        return job
    end = job.ended_at if job.ended_at is not None else now
    joules = _joules(store, job, job.started_at, end)
    if joules is None:
        return job
    return job.evolve(energy_kwh=kwh_from_joules([joules]), cost=_cost(store, job, job.started_at, end, prices))


def _cost(store: Store, job: Job, start: float, end: float, prices: Sequence[PriceInterval]) -> float | None:
    """Each price interval's kWh times its price, summed (`energy_prices.priced`); None: a moment lacks price or reading."""
    parts = covering(prices, start, end)
    if parts is None:
        return None
    energies: list[tuple[float, float | None]] = []
    for lo, hi, price in parts:
        joules = _joules(store, job, lo, hi)
        if joules is None or price is None:
            return None
        energies.append((kwh_from_joules([joules]), price))
    return priced(energies)
