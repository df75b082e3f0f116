"""A policy's course on live prices: the engine replayed from when the policy started applying up to now.

`power plan / apply / status` set the limit the policy gives for the interval running now, and that limit depends on
what the policy did before (dwell, ramp, the loss budget of `optimize`). Rather than keep the engine's state between
runs (a cron job that missed a run, or ran twice, would carry a wrong state), every run replays the engine causally
from the start over the prices, exactly as `power simulate` replays a file (`simulator.replay_moments`: the same
step, the same visibility of prices), so the live course and the simulator's schedule are one and the same. Past the
series' last row (the feed stopped) the intervals go on at the series' usual length with no new price, so the
prices turn stale and the policy falls back to its fail-safe. There is no budget period live: `loss_budget: period`
is held as `rolling` (docs/power.md). Pure: no IO, the caller passes the prices and the clock.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange, PowerAction, PricePoint, iso_utc_seconds
from factoryctl.power.curve import PowerCurve
from factoryctl.power.policy.config import OptimizePolicy, Policy
from factoryctl.power.policy.engine import EngineSetup, EngineState
from factoryctl.power.policy.view import PriceView, SeriesWindow
from factoryctl.power.simulator import check_history, inspect_series, replay_moments, visible_until


@dataclass(frozen=True)
class Course:
    """The replayed course: every interval's action from `started_s`, the one running now, and what is known now.

    `action` is the decision for the interval `[interval_start_s, interval_end_s)` that contains now; `state` is the
    engine's state after it. `replayed_from_s` is the first interval replayed (the one holding the start, or the
    series' first row when the prices begin later). `price_age_s` is how long ago the newest known price's interval
    started, judged at now (None: no price is known), and `price_per_mwh` the price then in force: the current
    interval's when published, else the newest published one (`PriceView.last_published`).
    """

    actions: tuple[PowerAction, ...]
    state: EngineState
    interval_start_s: int
    interval_end_s: int
    replayed_from_s: int
    price_age_s: int | None
    price_per_mwh: float | None

    @property
    def action(self) -> PowerAction:
        """The decision for the interval running now."""
        return self.actions[-1]


def moments(
    times: Sequence[int], durations: Sequence[int], interval_s: int, start_s: int, now_s: int
) -> list[tuple[int, int]]:
    """The intervals to replay, as (start, length): the rows from the one holding `start_s` to the one holding now.

    When now is past the last of them (the series ended, or now falls in a gap), intervals of the usual length
    `interval_s` follow it up to the one holding now, with no price of their own.
    """
    first = max(0, bisect_right(times, min(start_s, now_s)) - 1)
    last = bisect_right(times, now_s)  # rows starting at or before now
    chosen = [(times[i], durations[i]) for i in range(first, last)]
    moment = chosen[-1][0] + chosen[-1][1]
    while moment <= now_s:
        chosen.append((moment, interval_s))
        moment += interval_s
    return chosen


def course(
    points: Sequence[PricePoint],
    policy: Policy,
    curve: PowerCurve,
    gpu: GpuPowerRange,
    visibility: str,
    start_s: int,
    now_s: int,
    utc_offset_s: int = 0,
    policy_where: str = "the policy",
) -> Course:
    """Replay `policy` for a GPU of range `gpu` from `start_s` to `now_s` over the price series `points`.

    Refuses (UsageError) an empty series, one that starts after now (no interval to decide), and an `optimize`
    history shorter than the prices' interval, as `power simulate` does.
    """
    series = inspect_series(points, utc_offset_s)
    check_history(policy, series.interval_s, policy_where)
    times = [p.timestamp_s for p in points]
    if now_s < times[0]:
        raise UsageError(
            f"the prices start at {iso_utc_seconds(times[0])}, after now ({iso_utc_seconds(now_s)}), so no interval"
            " to decide has a price yet",
            hint="check the price source's clock and time zone (times without an offset are UTC).",
        )
    durations = series.durations_s or (series.interval_s,) * len(points)
    steps = moments(times, durations, series.interval_s, start_s, now_s)
    setup = EngineSetup(policy, curve, gpu)  # no period length live: `period` is held as `rolling`
    actions, state = replay_moments(points, setup, visibility, series.interval_s, steps)
    start, length = steps[-1]
    view = PriceView(
        now_s, series.interval_s, SeriesWindow(points, times, 0, bisect_left(times, visible_until(now_s, visibility)))
    )
    return Course(actions, state, start, start + length, steps[0][0], view.age_s(), view.last_published())


def loss_so_far(policy: Policy, state: EngineState) -> float | None:
    """The mean throughput loss of the course so far (a fraction), the interval running now counted as planned.

    Each interval adds `weight x (D - loss)` to the bank and `weight` to the elapsed time, so the time-weighted mean
    loss is `D - bank / elapsed`. None for `tiers` (no budget) and before any interval.
    """
    if not isinstance(policy, OptimizePolicy) or state.elapsed <= 0:
        return None
    return policy.max_throughput_loss - state.loss_bank / state.elapsed
