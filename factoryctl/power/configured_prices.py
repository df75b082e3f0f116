"""factory.yaml's price source (`power.price_source`), opened in one place for every reader of it.

`power plan / apply / diff / status`, the controller's power loop, `price show / history`, `sched tick`'s price now,
`jobs show`'s costs and `power report` all read the prices the operator configured. Opened here, a relative
`power.prices` is taken from factory.yaml's directory the same way for all of them (`config_dir`), and a source that
gives no prices at all (only a plugin can: a CSV file without rows is refused as it is read) is refused in one
wording. Without a source each caller decides: the policy refuses, the scheduler and the costs go on without prices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from factoryctl.config import FactoryConfig
from factoryctl.model.energy_prices import PriceInterval
from factoryctl.model.power import PricePoint

if TYPE_CHECKING:
    from factoryctl.power.plugins import LoadedPriceSource

#: What to do about a configured source that gives no prices (`price show` adds `--prices FILE`, which it takes).
EMPTY_SOURCE_HINT = "check the price feed and power.prices in factory.yaml."


def open_configured(config: FactoryConfig) -> LoadedPriceSource | None:
    """factory.yaml's price source, a relative `power.prices` taken from factory.yaml's directory; None without one."""
    from factoryctl.config_schema import config_dir
    from factoryctl.power.plugins import open_price_source

    power = config.settings.power
    if power.price_source is None:
        return None
    return open_price_source(power.price_source, power.prices, config_dir(config.path))


def refuse_empty(where: str, doing: str, hint: str = EMPTY_SOURCE_HINT) -> NoReturn:
    """Refuse a source that gave no prices at all, naming it (`where`) and what wanted them (`doing`); exit 1."""
    from factoryctl.errors import ActionFailed

    raise ActionFailed(f"no price in {where} {doing}: it has no prices.", hint)


def configured_prices(
    config: FactoryConfig, doing: str, opened: Callable[[LoadedPriceSource], None] | None = None
) -> tuple[list[PricePoint], int]:
    """The configured source's points and its market clock (UTC offset, s); a source without prices is refused.

    `opened(source)` is called before the fetch (the CLI says the source's warnings on stderr there). A config
    without a source never comes here: the policy's `read_inputs` refuses it first, naming the command.
    """
    source = open_configured(config)
    assert source is not None  # `read_inputs` refused a config without one, naming the command
    if opened is not None:
        opened(source)
    points = list(source.fetch())
    if not points:
        refuse_empty(source.label, doing)
    return points, source.utc_offset_s


def configured_intervals(config: FactoryConfig) -> tuple[str, list[PriceInterval]] | None:
    """The configured source's label and every interval of it (start, end, price per MWh or None); None without one.

    Each row lasts as `power.intervals` says (until the next row, or its run's interval before a gap).
    """
    from factoryctl.power.intervals import row_intervals

    source = open_configured(config)
    if source is None:
        return None
    points = list(source.fetch())
    durations = row_intervals([p.timestamp_s for p in points], source.utc_offset_s).durations_s
    intervals: list[PriceInterval] = [
        (p.timestamp_s, p.timestamp_s + d, p.price_per_mwh) for p, d in zip(points, durations, strict=True)
    ]
    return source.label, intervals


def price_intervals(config: FactoryConfig) -> list[PriceInterval]:
    """Every interval of factory.yaml's price source (`configured_intervals`); [] without one."""
    found = configured_intervals(config)
    return [] if found is None else found[1]
