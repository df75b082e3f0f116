"""The grid price a scheduling pass holds deferrable jobs against: the interval running now, from factory.yaml.

The same source `price show` and `power apply` read (`power.price_source`, opened by power/configured_prices.py). No
source, no row for now, or a row whose price is unknown all give None, and the scheduler then holds nothing back: a
deferrable job is never stuck behind a feed that stopped, it only loses the saving (`sched tick` says so on stderr).
"""

from __future__ import annotations

from factoryctl.config import FactoryConfig
from factoryctl.power.configured_prices import configured_intervals


def price_now(config: FactoryConfig, now: float) -> tuple[float | None, str | None]:
    """(the price per MWh of the interval running at `now`, or None; why it is None when a source is configured)."""
    found = configured_intervals(config)
    if found is None:
        return None, None
    label, intervals = found
    known = [interval for interval in intervals if interval[0] <= now]
    if not known:
        return None, f"the prices of {label} start after now"
    _, end, price = known[-1]
    if now >= end:
        return None, f"the prices of {label} end before now"
    if price is None:
        return None, f"{label} has no price for the interval running now"
    return price, None
