"""The grid price a scheduling pass holds deferrable jobs against: the interval running now, from factory.yaml.

The same source `price show` and `power apply` read (`power.price_source`). No source, no row for now, or a row
whose price is unknown all give None, and the scheduler then holds nothing back: a deferrable job is never stuck
behind a feed that stopped, it only loses the saving (`sched tick` says so on stderr).
"""

from __future__ import annotations

from factoryctl.config import FactoryConfig
from factoryctl.model.power import PricePoint
from factoryctl.power.intervals import row_intervals
from factoryctl.power.plugins import LoadedPriceSource, open_price_source
from factoryctl.power.sources import market_offset_s


def _loaded(config: FactoryConfig) -> tuple[LoadedPriceSource, list[PricePoint], list[int]] | None:
    """factory.yaml's price source, its points and each point's interval in seconds; None without a source."""
    power = config.settings.power
    if power.price_source is None:
        return None
    base = config.path.parent if config.path is not None and config.path.is_file() else None
    source = open_price_source(power.price_source, power.prices, base)
    points = list(source.fetch())
    durations = row_intervals([p.timestamp_s for p in points], market_offset_s(source)).durations_s
    return source, points, list(durations)


def price_now(config: FactoryConfig, now: float) -> tuple[float | None, str | None]:
    """(the price per MWh of the interval running at `now`, or None; why it is None when a source is configured)."""
    loaded = _loaded(config)
    if loaded is None:
        return None, None
    source, points, durations = loaded
    known = [p for p in points if p.timestamp_s <= now]
    if not known:
        return None, f"the prices of {source.label} start after now"
    if now >= known[-1].timestamp_s + durations[len(known) - 1]:
        return None, f"the prices of {source.label} end before now"
    if known[-1].price_per_mwh is None:
        return None, f"{source.label} has no price for the interval running now"
    return known[-1].price_per_mwh, None


def price_intervals(config: FactoryConfig) -> list[tuple[float, float, float | None]]:
    """Every interval of factory.yaml's price source as (start, end, price per MWh or None); [] without one."""
    loaded = _loaded(config)
    if loaded is None:
        return []
    _, points, durations = loaded
    return [(p.timestamp_s, p.timestamp_s + d, p.price_per_mwh) for p, d in zip(points, durations, strict=True)]
