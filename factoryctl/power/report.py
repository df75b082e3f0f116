"""What a past period's GPU power cost per node, and what the power policy did: `factoryctl power report`, from the store.

The question an operator otherwise answers with a tariff spreadsheet: the kWh, their cost at the configured price
source's prices (priced interval by interval, `model.energy_prices`, as `jobs show` prices a job), the mean price
paid per MWh (energy-weighted) beside the period's time-weighted mean price (a policy that draws less in expensive
hours pays less than the mean), the share of GPU-time spent capped below the GPU's default limit, and the
power-limit changes of the audit log, the policy's apart from those made by hand. Read from the store alone, so it
works with the controller running or from cron-collected telemetry, and never contacts a node.

Nothing missing is invented: a node with no reading has no energy (None, not 0), an interval without telemetry (no
reading of the node held into it: before its first, after its last, or in a silence, raw rows pruned or not) is
counted (`gaps`), not filled, and a period whose prices are not all known has no cost. The limit a GPU had over the
period is read from the audit log: each change's limit after it, and before the first change the limit it replaced
(without any change since the period began, the limit the store saw last). A limit changed outside factoryctl (a
reboot, `nvidia-smi -pl`) is not in the log, so the capped share counts only what factoryctl changed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factoryctl.model.energy_prices import MAX_INTERVALS, PriceInterval, covering, priced
from factoryctl.model.telemetry import kwh_from_joules

if TYPE_CHECKING:
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import AuditEntry
    from factoryctl.store.sqlite import Store

#: How an audit entry's reason starts when the power policy made the change (`power apply`, the controller's loop).
POLICY_REASONS = ("power apply:", "controller power loop")
#: Two limits closer than this (watts) are the same limit: a GPU set to its default is not capped.
BELOW_DEFAULT_MARGIN_W = 1e-6


@dataclass
class NodeReport:
    """One node's period: energy (kWh; None: no reading), cost, capped GPU-time and limit changes."""

    node: str
    gpus: int = 0
    gpus_unread: int = 0  # GPUs with no reading in the whole period: the energy sums the others
    energy_kwh: float | None = None
    cost: float | None = None
    priced_kwh: float = 0.0  # the kWh of the price intervals with a reading: what `cost` prices
    gaps: int = 0  # price intervals (or the whole period, without prices) with no reading of this node
    #: Those price intervals as runs of adjacent ones: (start, end) of each, in time order (for the warning).
    gap_runs: list[tuple[float, float]] = field(default_factory=list)
    capped_s: float = 0.0
    gpu_s: float = 0.0  # GPU-seconds whose limit and default are known: what the capped share is of
    policy_changes: int = 0
    hand_changes: int = 0
    #: The time-weighted mean price of the price intervals it has readings in: what its `paid` compares with.
    mean_price_per_mwh: float | None = None


@dataclass
class PeriodReport:
    """The period's nodes, and the prices over it: the time-weighted mean, or why there is no cost."""

    start: float
    end: float
    nodes: list[NodeReport]
    intervals: int = 0  # price intervals the period falls in (0: none priced)
    #: The time-weighted mean price of the intervals any node has readings in (the TOTAL's, beside its paid price).
    mean_price_per_mwh: float | None = None
    no_cost: str | None = None  # why no cost is given (None: every interval has a price)
    unpriced: list[tuple[float, float]] = field(default_factory=list)  # intervals in the period without a price


def read_report(
    store: Store,
    names: Sequence[str],
    window: tuple[float, float],
    prices: Sequence[PriceInterval],
    progress: Callable[[int, int], None] | None = None,
) -> PeriodReport:
    """The report of `names` over the `window` [start, end) from `store`, priced at `prices` (none: no cost).

    The period's energy and each price interval's (a month of 15-minute prices, 2880) are `store.energy` over them,
    read GPU by GPU in one pass (`energy_by_interval`: the rollups' minutes summed per interval by SQLite, so a month
    of a few hundred nodes does not bring every rollup row into Python): `progress` is told (intervals read,
    intervals) in proportion to the GPUs read.
    """
    from factoryctl.store.energy_intervals import energy_by_interval

    start, end = window
    report = PeriodReport(start, end, [NodeReport(name) for name in names])
    by_name = {node.node: node for node in report.nodes}
    parts = _price_parts(report, prices)
    windows = [(start, end), *((lo, hi) for lo, hi, _ in parts or ())]
    read = energy_by_interval(store, list(names), windows, _gpus_told(progress, parts))
    # GPU by GPU, node after node: each node's intervals are summed once its GPUs are read, then their joules dropped
    # (a month of a few hundred nodes kept 6 million of them)
    by_interval = {name: _read_node(by_name[name], gpus) for name, gpus in itertools.groupby(read, lambda r: r[0])}
    _count_gaps(report, parts, by_interval)
    _add_limits(store, report)
    return report


def unread_report(names: Sequence[str], window: tuple[float, float], prices: Sequence[PriceInterval]) -> PeriodReport:
    """The report of a period nothing was stored of (no store yet): no node has a reading, every interval is a gap."""
    report = PeriodReport(*window, [NodeReport(name) for name in names])
    _count_gaps(report, _price_parts(report, prices), {})
    return report


def _count_gaps(
    report: PeriodReport, parts: Sequence[PriceInterval] | None, by_interval: dict[str, list[float | None]]
) -> None:
    """Each node's intervals without a reading (the whole period, one, without prices), and its priced energy."""
    if parts is None:
        for node in report.nodes:
            node.gaps = int(node.energy_kwh is None)
    else:
        _price_nodes(report, parts, by_interval)


def _read_node(node: NodeReport, gpus: Iterable[tuple[str, int, list[tuple[float, str]]]]) -> list[float | None]:
    """Add `node`'s GPUs (as `energy_by_interval` gives them) to it; its kWh per price interval (None: no reading)."""
    whole: list[float] = []
    by_interval: list[list[float]] = []
    for _, _, (period, *billed) in gpus:
        node.gpus += 1
        if period[1] == "none":  # a GPU with no reading has no amount, not 0 (as `telemetry energy` reads it)
            node.gpus_unread += 1
        else:
            whole.append(period[0])
        by_interval = by_interval or [[] for _ in billed]
        for joules_read, (joules, source) in zip(by_interval, billed, strict=True):
            if source != "none":
                joules_read.append(joules)
    if whole:
        node.energy_kwh = kwh_from_joules(whole)
    return [kwh_from_joules(joules) if joules else None for joules in by_interval]


def _gpus_told(
    progress: Callable[[int, int], None] | None, parts: Sequence[PriceInterval] | None
) -> Callable[[int, int], None] | None:
    """`progress` told (intervals, of all) for (GPUs read, of all): the price intervals are read GPU by GPU."""
    if progress is None or parts is None:
        return None
    told = progress
    return lambda done, gpus: told(len(parts) * done // max(1, gpus), len(parts))


def _price_parts(report: PeriodReport, prices: Sequence[PriceInterval]) -> list[PriceInterval] | None:
    """The price intervals of the period, and the mean price and `no_cost` of `report`; None: nothing to price by."""
    if not prices:
        report.no_cost = "no price source is configured (power.price_source in factory.yaml)"
        return None
    parts = covering(prices, report.start, report.end)
    if parts is None:
        within = sum(1 for lo, hi, _ in prices if lo < report.end and hi > report.start)
        report.no_cost = (
            f"the period spans {within} price intervals, more than the {MAX_INTERVALS} a cost is summed over"
            if within > MAX_INTERVALS
            else f"the price source's intervals do not cover the whole period ({_span(prices)})"
        )
        return None
    report.intervals = len(parts)
    report.unpriced = [(lo, hi) for lo, hi, price in parts if price is None]
    if report.unpriced:
        report.no_cost = f"{len(report.unpriced)} of the period's {len(parts)} price intervals have no price"
    return parts


def _span(prices: Sequence[PriceInterval]) -> str:
    """Where the prices start and end, for a period they do not cover (`--since` within it is priced)."""
    from factoryctl.model.timefmt import iso_utc

    return f"its prices run from {iso_utc(min(lo for lo, _, _ in prices))} to {iso_utc(max(hi for _, hi, _ in prices))}"


def _mean_price(parts: Sequence[PriceInterval], read: Sequence[bool]) -> float | None:
    """The time-weighted mean price of the intervals `read` marks (None: none, or one without a price)."""
    chosen = [(hi - lo, price) for (lo, hi, price), taken in zip(parts, read, strict=True) if taken]
    if not chosen or any(price is None for _, price in chosen):
        return None
    return math.fsum(seconds * (price or 0.0) for seconds, price in chosen) / math.fsum(s for s, _ in chosen)


def _price_nodes(report: PeriodReport, parts: Sequence[PriceInterval], read: dict[str, list[float | None]]) -> None:
    """Each node's kWh per price interval (`read`; None: no reading), priced; an interval without a reading is a gap.

    The mean price a node's paid price compares with is over its intervals with readings, not the whole period:
    a controller a few hours old paid the prices of those hours only.
    """
    unread: list[float | None] = [None] * len(parts)
    anyone = [any(read.get(node.node, unread)[i] is not None for node in report.nodes) for i in range(len(parts))]
    report.mean_price_per_mwh = _mean_price(parts, anyone)
    for node in report.nodes:
        kwh = read.get(node.node, unread)
        node.mean_price_per_mwh = _mean_price(parts, [part is not None for part in kwh])
        priced_parts = [(part, price) for part, (_, _, price) in zip(kwh, parts, strict=True) if part is not None]
        node.gaps = len(parts) - len(priced_parts)
        node.gap_runs = _runs([(lo, hi) for part, (lo, hi, _) in zip(kwh, parts, strict=True) if part is None])
        node.priced_kwh = math.fsum(part for part, _ in priced_parts)
        if node.energy_kwh is not None and report.no_cost is None:
            node.cost = priced(priced_parts)


def _runs(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """`spans` (in time order) with each one that starts where the one before ends joined to it."""
    runs: list[tuple[float, float]] = []
    for lo, hi in spans:
        if runs and runs[-1][1] == lo:
            runs[-1] = (runs[-1][0], hi)
        else:
            runs.append((lo, hi))
    return runs


def _add_limits(store: Store, report: PeriodReport) -> None:
    """Each node's capped GPU-time and its limit changes in the period, from the audit log and the newest samples."""
    from factoryctl.store.rows import CONFIRMED

    names = [node.node for node in report.nodes]
    window = store.newest_window("audit", report.start, names, _ALL_ENTRIES)
    entries: dict[tuple[str, int], list[AuditEntry]] = {}
    by_name = {node.node: node for node in report.nodes}
    for page in store.audit_pages(window):
        for entry in page:
            if entry.outcome != CONFIRMED or entry.gpu is None or entry.node not in by_name:
                continue
            entries.setdefault((entry.node, entry.gpu), []).append(entry)
            if entry.time < report.end:
                node = by_name[entry.node]
                if (entry.reason or "").startswith(POLICY_REASONS):
                    node.policy_changes += 1
                else:
                    node.hand_changes += 1
    for state, sample in store.latest():
        if state.node in by_name and sample is not None:
            _add_capped(by_name[state.node], sample, entries, report)


#: Every audit entry of the period is read (page by page), however many.
_ALL_ENTRIES = 2**62


def _add_capped(
    node: NodeReport, sample: NodeSample, entries: dict[tuple[str, int], list[AuditEntry]], report: PeriodReport
) -> None:
    """Add each GPU's capped seconds and seconds with a known limit (`capped_seconds`) to `node`."""
    for gpu in sample.gpus:
        if gpu.power_limit_default_w is None:
            continue
        limits = limit_course(entries.get((node.node, gpu.index), []), gpu.power_limit_w)
        capped, known = capped_seconds(limits, gpu.power_limit_default_w, report.start, report.end)
        node.capped_s += capped
        node.gpu_s += known


def limit_course(entries: Sequence[AuditEntry], newest_w: float | None) -> list[tuple[float | None, float | None]]:
    """A GPU's limit from the period's start on, as (from when, watts or None: unknown); the first from the start (None).

    From its changes in the audit log, oldest first, each at or after the start: before the first, the limit it
    replaced; without any, `newest_w` (the limit the store saw last) all along.
    """
    if not entries:
        return [(None, newest_w)]
    return [(None, entries[0].before_w), *((entry.time, entry.after_w) for entry in entries)]


def capped_seconds(
    course: Sequence[tuple[float | None, float | None]], default_w: float, start: float, end: float
) -> tuple[float, float]:
    """(seconds of [start, end) the limit was below `default_w`, seconds the limit was known), for `limit_course`."""
    capped = known = 0.0
    for index, (since, watts) in enumerate(course):
        lo = start if since is None else max(start, since)
        following = course[index + 1][0] if index + 1 < len(course) else None
        hi = end if following is None else min(end, following)
        if hi <= lo or watts is None:
            continue
        known += hi - lo
        if watts < default_w - BELOW_DEFAULT_MARGIN_W:
            capped += hi - lo
    return capped, known
