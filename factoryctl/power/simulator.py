"""Offline scoring of a power policy on a price series: causal replay, the fixed metrics, and two references.

The simulator is how a policy is chosen before it touches a node, so its definitions are fixed (docs/power.md):
cost = sum(price/MWh x power_rel(frac) x hours), the bill of GPUs drawing 1 MW at their largest limit; baseline =
the same at frac 1; saving = (baseline - cost) / |baseline| (so money saved is a positive saving whatever the sign
of the prices); loss = 1 - the time-weighted mean of throughput_rel(frac). Each row is weighted by its own interval
(`intervals.row_intervals`), so a file that mixes hourly and 15-minute rows counts each for the time it lasts. It
replays the engine interval by interval and hands it only the prices published by then (`visibility`), then
compares with the best price-blind fixed limit and the clairvoyant LP.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange, PowerAction, PricePoint, iso_utc_seconds
from factoryctl.power.curve import PowerCurve
from factoryctl.power.intervals import price_interval_s, row_intervals
from factoryctl.power.policy.config import OptimizePolicy, Policy
from factoryctl.power.policy.engine import EngineSetup, EngineState, decide
from factoryctl.power.policy.lagrange import LagrangeChains, solve_lp
from factoryctl.power.policy.optimizer import ReferenceWindow
from factoryctl.power.policy.view import DAY_S, PriceView, SeriesWindow
from factoryctl.textfile import exact_number

VISIBILITIES = ("day-ahead", "realtime")
#: Two savings closer than this (percentage points) are the same: the LP's bound lands within float noise of the
#: blind setting when there is no room between them (D = 0), and is then reported as equal to it.
SAME_SAVING_PCT = 1e-9
#: Day-ahead auctions publish all of day d+1 by this hour (UTC) of day d.
DAY_AHEAD_PUBLISH_S = 12 * 3600


@dataclass(frozen=True)
class SeriesReport:
    """What is wrong or notable in a price series: its usual interval, unknown prices, gaps, each row's interval.

    `interval_s` is the median spacing (the series' usual interval); `durations_s` is each row's own interval,
    which weights it in every metric (empty: every row lasts `interval_s`).
    """

    interval_s: int
    nan_prices: int
    missing_intervals: int
    gaps: tuple[tuple[int, int], ...]
    durations_s: tuple[int, ...] = ()

    def hours(self, count: int) -> list[float]:
        """Each of `count` rows' length in hours (the weight of its price and throughput)."""
        durations = self.durations_s or (self.interval_s,) * count
        return [d / 3600 for d in durations]


@dataclass(frozen=True)
class Score:
    """The fixed metrics of one schedule (percentages are 0-100; None when the baseline is too near zero).

    Costs are in the prices' currency for GPUs drawing 1 MW at their largest limit (price/MWh x MW x hours).
    """

    baseline_cost: float
    cost: float
    saving_pct: float | None
    throughput_loss_pct: float


@dataclass(frozen=True)
class SimulationResult:
    """A replayed schedule, its score, the references and the series report.

    `no_reference_intervals` counts the intervals in which `optimize` had no known price to value throughput on
    (`EngineState.no_reference`): they asked for full power, which the results alone do not show.
    """

    actions: tuple[PowerAction, ...]
    score: Score
    blind_saving_pct: float | None
    bound_saving_pct: float | None
    series: SeriesReport
    no_reference_intervals: int = 0

    @property
    def gap_fraction(self) -> float | None:
        """How much of the gap between the price-blind setting and the clairvoyant bound the policy closed.

        None only when there is no gap: bound and blind equal (to rounding, `SAME_SAVING_PCT`) or unknown.
        """
        saving, blind, bound = self.score.saving_pct, self.blind_saving_pct, self.bound_saving_pct
        if saving is None or blind is None or bound is None or abs(bound - blind) <= SAME_SAVING_PCT:
            return None
        return (saving - blind) / (bound - blind)


def inspect_series(points: Sequence[PricePoint], utc_offset_s: int = 0) -> SeriesReport:
    """Check order and report unknown prices, gaps and each row's interval (`interval_s` is the median spacing).

    `utc_offset_s` is the market's clock, on whose interval boundaries a change of resolution starts
    (`intervals.row_intervals`).
    """
    if not points:
        raise UsageError("the price series is empty")
    for a, b in itertools.pairwise(points):
        if b.timestamp_s <= a.timestamp_s:
            raise UsageError(
                f"price timestamps must be strictly increasing ({iso_utc_seconds(b.timestamp_s)} repeats or goes back)",
                hint="sort the file and drop duplicate rows.",
            )
    rows = row_intervals([p.timestamp_s for p in points], utc_offset_s)
    gaps = tuple((start, end) for start, end, _ in rows.gaps)
    nan = sum(p.price_per_mwh is None for p in points)
    return SeriesReport(
        price_interval_s([p.timestamp_s for p in points]), nan, rows.missing_intervals, gaps, rows.durations_s
    )


def visible_until(now_s: int, visibility: str) -> int:
    """The first interval start not yet published at `now_s`.

    realtime: only intervals that have started before now. day-ahead: all of UTC day d+1 from 12:00 UTC on day d,
    and the current day always (which covers the first day of a series from its start).
    """
    if visibility == "realtime":
        return now_s
    day_start = now_s - now_s % DAY_S
    ahead = 2 if now_s - day_start >= DAY_AHEAD_PUBLISH_S else 1
    return day_start + ahead * DAY_S


def score(
    points: Sequence[PricePoint], fracs: Sequence[float], curve: PowerCurve, hours: Sequence[float] | None = None
) -> Score:
    """The fixed metrics of a schedule, each row weighted by its `hours` (default 1 each).

    Rows without a price count for throughput but not for cost.
    """
    weights = [1.0] * len(points) if hours is None else hours
    priced = [
        (p.price_per_mwh, f, w) for p, f, w in zip(points, fracs, weights, strict=True) if p.price_per_mwh is not None
    ]
    full = curve.power_rel(1.0)
    baseline = sum((price * full * w for price, _, w in priced), 0.0)  # 0.0, not 0, when no price is known
    cost = sum((price * curve.power_rel(f) * w for price, f, w in priced), 0.0)
    gross = sum(abs(price) * full * w for price, _, w in priced)
    loss = 1.0 - sum(curve.throughput_rel(f) * w for f, w in zip(fracs, weights, strict=True)) / sum(weights)
    return Score(baseline, cost, saving_pct(baseline, cost, gross), 100.0 * loss)


#: A baseline smaller than this share of the gross bill (every price counted as positive) has no meaningful
#: relative saving: prices that nearly cancel would turn a small absolute difference into thousands of percent.
NEAR_ZERO_BASELINE = 0.01


def saving_pct(baseline: float, cost: float, gross: float | None = None) -> float | None:
    """100 x (baseline - cost) / |baseline|: positive when the schedule pays less (or earns more) than the baseline.

    Dividing by the baseline itself would flip the sign when prices are mostly negative (the baseline then earns
    money, and earning more would read as a loss). A baseline of zero, or (given the `gross` bill, every price
    counted as positive) under `NEAR_ZERO_BASELINE` of it, has no relative saving (None).
    """
    if baseline == 0 or (gross is not None and abs(baseline) < NEAR_ZERO_BASELINE * gross):
        return None
    return 100.0 * (baseline - cost) / abs(baseline)


def blind_saving_pct(
    points: Sequence[PricePoint], curve: PowerCurve, max_loss: float, hours: Sequence[float] | None = None
) -> float | None:
    """The best fixed limit chosen without looking at prices (over the curve's range) with loss at most D."""
    weights = [1.0] * len(points) if hours is None else hours
    total = sum(p.price_per_mwh * w for p, w in zip(points, weights, strict=True) if p.price_per_mwh is not None)
    sign = 1.0 if total >= 0 else -1.0
    frac = curve.best_frac(sign, 0.0, curve.min_frac, curve.max_frac, 1.0 - max_loss)
    return score(points, [frac] * len(points), curve, weights).saving_pct


def bound_saving_pct(
    points: Sequence[PricePoint], curve: PowerCurve, max_loss: float, hours: Sequence[float] | None = None
) -> float | None:
    """The clairvoyant LP optimum (every price known, time-sharing within an interval allowed)."""
    weights = [1.0] * len(points) if hours is None else hours
    full = score(points, [1.0] * len(points), curve, weights)
    if full.saving_pct is None:
        return None
    chains = LagrangeChains.from_points(curve.points)
    solution = solve_lp([p.price_per_mwh for p in points], chains, max_loss, weights)
    return saving_pct(full.baseline_cost, solution.cost)


def check_reachable(curve: PowerCurve, max_loss: float) -> None:
    """Refuse a curve on which no limit keeps the loss within D: no blind setting, no bound, no policy could.

    Without this the blind reference would silently be the most throughput the curve has, and `optimize` (which
    never exceeds D by its definition) would report a loss above D.
    """
    best = max(p.throughput_rel for p in curve.points)
    if best >= 1.0 - max_loss - 1e-12:
        return
    needed = math.ceil((1.0 - best) * 1000 - 1e-9) / 1000
    raise UsageError(
        f"the curve {curve.name} never reaches throughput_rel {exact_number(1.0 - max_loss)} (1 - D for D ="
        f" {exact_number(max_loss)}): its highest is {exact_number(best)}, so no power limit keeps the loss within D.",
        hint=f"check that the curve measures the largest limit (pl_frac 1, throughput_rel near 1), or raise"
        f" --max-throughput-loss to at least {needed:g}.",
    )


def _lookback_s(policy: Policy) -> int:
    history = policy.history_s if isinstance(policy, OptimizePolicy) else 0
    return max(history, policy.rules.stale_after_s, 2 * DAY_S)


#: How many times a replay tells its progress (`replay`'s `progress`): often enough for a line that moves.
PROGRESS_STEPS = 100


def replay(
    points: Sequence[PricePoint],
    setup: EngineSetup,
    visibility: str,
    interval_s: int,
    durations: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[PowerAction, ...]:
    """Run the engine over every row, showing it only the prices published by then and how long the row lasts.

    `durations` is each row's own interval (`SeriesReport.durations_s`); None: `intervals.row_intervals` in UTC.
    `progress` is told (rows done, rows) now and then. Each view is a window on the series, not a copy, and the
    reference sample slides along with it (`ReferenceWindow`), so an interval costs the same whatever the history.
    """
    return replay_state(points, setup, visibility, interval_s, durations, progress)[0]


def replay_state(
    points: Sequence[PricePoint],
    setup: EngineSetup,
    visibility: str,
    interval_s: int,
    durations: Sequence[int] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[tuple[PowerAction, ...], EngineState]:
    """`replay`, with the engine's state after the last row (what it counted along the way)."""
    times = [p.timestamp_s for p in points]
    if durations is None:
        durations = row_intervals(times).durations_s
    return replay_moments(points, setup, visibility, interval_s, list(zip(times, durations, strict=True)), progress)


def replay_moments(
    points: Sequence[PricePoint],
    setup: EngineSetup,
    visibility: str,
    interval_s: int,
    moments: Sequence[tuple[int, int]],
    progress: Callable[[int, int], None] | None = None,
    state: EngineState | None = None,
) -> tuple[tuple[PowerAction, ...], EngineState]:
    """Run the engine at each of `moments` (an interval's start and length, in time order) over the series `points`.

    At each moment the engine sees the prices published by then (`visible_until`) within its lookback, as a window
    on the series; the moments are the rows' own starts in a replay (`replay_state`), and whatever intervals a live
    course needs (policy_course.py: the rows since a policy started, then the intervals past the series' end), so
    both run exactly this step. `state` is the engine's state before the first moment (None: a course's start; a
    live course resumed from a checkpoint passes the state it kept). Returns the actions and the state after the
    last moment.
    """
    if visibility not in VISIBILITIES:
        raise UsageError(f"unknown price visibility {visibility!r}", hint="use day-ahead or realtime.")
    times = [p.timestamp_s for p in points]
    chains = setup.chains()
    lookback = _lookback_s(setup.policy)
    window = ReferenceWindow()  # rebuilt whole on the first moment: the same sample as a replay carried along
    state = EngineState() if state is None else state
    actions: list[PowerAction] = []
    step = told = max(1, len(moments) // PROGRESS_STEPS)
    for index, (now, duration) in enumerate(moments):
        if progress is not None and index >= told:
            progress(index, len(moments))
            told = index + step
        low = bisect_left(times, now - lookback)
        high = bisect_left(times, visible_until(now, visibility))
        view = PriceView(now, interval_s, SeriesWindow(points, times, low, high), duration)
        action, state = decide(setup, view, state, chains, window)
        actions.append(action)
    return tuple(actions), state


def check_history(policy: Policy, interval_s: int, where: str = "the policy") -> None:
    """Refuse an `optimize` history shorter than one price interval: it holds no price to value throughput on.

    In realtime such a policy has no reference price at all and ran every interval at full power, saving nothing
    and saying nothing; day-ahead it priced throughput on tomorrow's prices alone. Either way the setting is a
    mistake (hours for minutes, or a 0), as `ramp_pct: 0` is.
    """
    if not isinstance(policy, OptimizePolicy) or policy.history_s >= interval_s:
        return
    hours = exact_number(policy.history_s / 3600)
    raise UsageError(
        f"history_hours {hours} in {where} is shorter than the prices' {exact_number(interval_s / 60)}-minute"
        " interval, so the history holds no price to value throughput on",
        hint=f"give history_hours at least {exact_number(interval_s / 3600)} (it is in hours; the default, 168, is a"
        " week), or leave it out.",
    )


def simulate(
    points: Sequence[PricePoint],
    curve: PowerCurve,
    gpu: GpuPowerRange,
    policy: Policy,
    visibility: str,
    max_loss: float,
    utc_offset_s: int = 0,
    progress: Callable[[int, int], None] | None = None,
    policy_where: str = "the policy",
) -> SimulationResult:
    """Replay `policy` over `points` and score it against the blind and clairvoyant references at loss `max_loss`.

    `utc_offset_s` is the market's clock (a CSV file's own offset, `LoadedPriceSource.utc_offset_s`); `progress`
    is told how far the replay is (`replay`); `policy_where` names the policy in a refusal (its file).
    """
    check_reachable(curve, max_loss)
    series = inspect_series(points, utc_offset_s)
    check_history(policy, series.interval_s, policy_where)
    period = sum(series.durations_s) / series.interval_s  # the budget period, in usual intervals
    setup = EngineSetup(policy, curve, gpu, period)
    actions, state = replay_state(points, setup, visibility, series.interval_s, series.durations_s, progress)
    hours = series.hours(len(points))
    result = score(points, [a.power_limit_frac for a in actions], curve, hours)
    blind = blind_saving_pct(points, curve, max_loss, hours)
    bound = bound_saving_pct(points, curve, max_loss, hours)
    if blind is not None and bound is not None and abs(bound - blind) <= SAME_SAVING_PCT:
        bound = blind  # float noise of the LP, not room the policy could close (gap_closed_frac is then null)
    return SimulationResult(
        actions=actions,
        score=result,
        blind_saving_pct=blind,
        bound_saving_pct=bound,
        series=series,
        no_reference_intervals=state.no_reference,
    )
