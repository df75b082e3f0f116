"""What every `DashboardServices` implementation shares, so the store-backed and the polled one stay alike.

Both answer the factory's name and interval from the config, record factory power at most once an interval, price
it, and fill the same `FactorySnapshot` fields; only where nodes, drains and events come from differs. Imports no
Textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from factoryctl.tui.services import DashboardEvent, FactorySnapshot

if TYPE_CHECKING:
    from collections.abc import Iterable

    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import Event
    from factoryctl.tui.grid import GridPrice
    from factoryctl.tui.history import RecentHistory


class ConfiguredServices:
    """The `factory_name` and `interval_s` of `DashboardServices`, both read from `self.config`."""

    config: FactoryConfig

    @property
    def factory_name(self) -> str:
        """The factory's name."""
        return self.config.name

    @property
    def interval_s(self) -> float:
        """The factory's sampling interval."""
        return self.config.interval_s


def assemble_snapshot(
    config: FactoryConfig,
    specs: Iterable[NodeSpec],
    now: float,
    nodes: tuple[NodeSample, ...],
    drained: frozenset[str],
    events: tuple[DashboardEvent, ...],
    history: RecentHistory,
    grid: GridPrice,
) -> FactorySnapshot:
    """The snapshot of `nodes` at `now`; records the factory's power in `history` once an interval.

    Only a refresh where some node reported its power is recorded: one where every node is still connecting (the
    first, or the first after a controller hands back) has no data, and a 0 W point would drag the hour's mean
    energy down (15 kWh/h shown three seconds in with 22.6 kW drawn) or read 0.0 kWh/h.
    """
    reported = [n.power_w for n in nodes if n.state not in ("down", "connecting") and n.power_w is not None]
    power_w = sum(reported)
    if reported:
        history.record_factory_at(now, power_w)
    price, cost_per_hour = grid.now(now, power_w / 1000)
    return FactorySnapshot(
        factory=config.name,
        time=now,
        nodes=nodes,
        racks={spec.name: spec.rack for spec in specs},
        drained=drained,
        budget_kw=config.settings.power.facility_budget_kw,
        interval_s=config.interval_s,
        power_history_w=history.factory_series(),
        events=events,
        groups=dict(config.groups),
        price=price,
        price_outlook_per_mwh=grid.outlook(now),
        cost_per_hour=cost_per_hour,
        price_error=grid.error,
    )


def dashboard_event(event: Event) -> DashboardEvent:
    """A stored or freshly judged event as the events panel shows it."""
    return DashboardEvent(event.time, event.node, event.kind, event.message, event.severity)


def cap_reason(watts: float) -> str:
    """The audit reason of a power cap set from the dashboard, whichever services set it."""
    return f"dashboard: {watts:g} W requested"
