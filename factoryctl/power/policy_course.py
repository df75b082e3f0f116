"""A policy's course on live prices: the engine replayed from when the policy started applying up to now.

`power plan / apply / status` set the limit the policy gives for the interval running now, and that limit depends on
what the policy did before (dwell, ramp, the loss budget of `optimize`). Rather than keep the engine's state between
runs (a cron job that missed a run, or ran twice, would carry a wrong state), every run replays the engine causally
from the start over the prices, exactly as `power simulate` replays a file (`simulator.replay_moments`: the same
step, the same visibility of prices), so the live course and the simulator's schedule are one and the same. Past the
series' last row (the feed stopped) the intervals go on at the series' usual length with no new price, so the
prices turn stale and the policy falls back to its fail-safe. There is no budget period live: `loss_budget: period`
is held as `rolling` (docs/power.md). Pure: no IO, the caller passes the prices and the clock.

Replaying from the start costs the whole course every run (a year of 15-minute prices is 35,000 steps, seconds per
GPU range, every 15 minutes), so a course also gives a `Checkpoint`: the engine's state after the last interval that
has fully ended, with a digest of everything the replay saw up to it (each interval's start and length, the series'
usual interval, the visibility, the policy and range, and every price row any of those intervals could see). The
next run resumes from it when its own replay would see exactly the same up to that interval (the digests match),
and replays from the start otherwise (a revised price, a row filled in, another visibility): the engine's step is
a function of its state and what it sees, and `optimize`'s reference sample is rebuilt whole from the view (the
same prices, so the same multiplier), so the resumed course is the full replay's, to the bit.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange, PowerAction, PricePoint, iso_utc_seconds
from factoryctl.power.curve import PowerCurve
from factoryctl.power.policy.config import OptimizePolicy, Policy
from factoryctl.power.policy.engine import EngineSetup, EngineState
from factoryctl.power.policy.view import PriceView, SeriesWindow
from factoryctl.power.simulator import _lookback_s, check_history, inspect_series, replay_moments, visible_until


@dataclass(frozen=True)
class Checkpoint:
    """Where a later run may resume a course: the state after the interval starting `interval_start_s`.

    `digest` is what the replay saw up to that interval (`_Seen.digest`); a run that would see otherwise replays.
    """

    interval_start_s: int
    digest: str
    state: EngineState


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
    checkpoint: Checkpoint | None = None
    resumed_from_s: int | None = None

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
    checkpoint: Checkpoint | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Course:
    """Replay `policy` for a GPU of range `gpu` from `start_s` to `now_s` over the price series `points`.

    From `checkpoint` when it still holds (`Checkpoint`), else from the start; `progress` is told how far the
    replay is (`simulator.replay_moments`). Refuses (UsageError) an empty series, one that starts after now (no
    interval to decide), and an `optimize` history shorter than the prices' interval, as `power simulate` does.
    """
    series = inspect_series(points, utc_offset_s)
    check_history(policy, series.interval_s, policy_where)
    times = [p.timestamp_s for p in points]
    _check_started(times[0], now_s)
    durations = series.durations_s or (series.interval_s,) * len(points)
    steps = moments(times, durations, series.interval_s, start_s, now_s)
    setup = EngineSetup(policy, curve, gpu)  # no period length live: `period` is held as `rolling`
    seen = _Seen(points, times, setup, visibility, series.interval_s, steps)
    resume = seen.resume_index(checkpoint)
    initial = EngineState() if resume is None or checkpoint is None else checkpoint.state
    todo = steps if resume is None else steps[resume + 1 :]
    done, before = replay_moments(points, setup, visibility, series.interval_s, todo[:-1], progress, initial)
    last, state = replay_moments(points, setup, visibility, series.interval_s, todo[-1:], None, before)
    start, length = steps[-1]
    view = PriceView(
        now_s, series.interval_s, SeriesWindow(points, times, 0, bisect_left(times, visible_until(now_s, visibility)))
    )
    return Course(
        done + last,
        state,
        start,
        start + length,
        steps[0][0],
        view.age_s(),
        view.last_published(),
        seen.checkpoint(len(steps) - 2, before),
        None if resume is None else steps[resume][0],
    )


def _check_started(first_s: int, now_s: int) -> None:
    """Refuse prices that start after now: no interval to decide has a price yet."""
    if now_s < first_s:
        raise UsageError(
            f"the prices start at {iso_utc_seconds(first_s)}, after now ({iso_utc_seconds(now_s)}), so no interval"
            " to decide has a price yet",
            hint="check the price source's clock and time zone (times without an offset are UTC).",
        )


class _Seen:
    """What a course's replay sees up to each of its intervals, as a digest a checkpoint can be checked against."""

    def __init__(
        self,
        points: Sequence[PricePoint],
        times: Sequence[int],
        setup: EngineSetup,
        visibility: str,
        interval_s: int,
        steps: Sequence[tuple[int, int]],
    ) -> None:
        """The replay of `steps` over `points`, for `setup` at `visibility`."""
        self.points, self.times, self.visibility, self.steps = points, times, visibility, steps
        self.lookback = _lookback_s(setup.policy)
        gpu = (float(setup.gpu.min_w), float(setup.gpu.max_w), float(setup.gpu.default_w))  # 300 W read as 300.0
        self.fixed = repr((visibility, interval_s, self.lookback, setup.policy, gpu)).encode()

    def digest(self, index: int) -> str:
        """The digest of what intervals `0..index` saw: their starts and lengths, the settings, and the prices.

        The prices are every row starting from the first interval's lookback up to what is published at the last
        one (each interval saw a part of those, by its own lookback and visibility, both moving forward).
        """
        low = bisect_left(self.times, self.steps[0][0] - self.lookback)
        high = bisect_left(self.times, visible_until(self.steps[index][0], self.visibility))
        rows = [(p.timestamp_s, p.price_per_mwh) for p in self.points[low:high]]
        hashed = hashlib.sha256(self.fixed)
        hashed.update(repr(list(self.steps[: index + 1])).encode())
        hashed.update(repr(rows).encode())
        return hashed.hexdigest()

    def resume_index(self, checkpoint: Checkpoint | None) -> int | None:
        """The index of the checkpoint's interval when the replay may resume after it (None: replay from the start).

        Only an interval that has ended before the one running now, seen alike (the digest), is resumed from.
        """
        if checkpoint is None:
            return None
        starts = [start for start, _ in self.steps]
        index = bisect_left(starts, checkpoint.interval_start_s)
        if index >= len(self.steps) - 1 or starts[index] != checkpoint.interval_start_s:
            return None
        return index if self.digest(index) == checkpoint.digest else None

    def checkpoint(self, index: int, state: EngineState) -> Checkpoint | None:
        """The checkpoint after interval `index` (the last that has ended), whose state is `state`."""
        if index < 0:
            return None
        return Checkpoint(self.steps[index][0], self.digest(index), state)


def planned_watts(action: PowerAction, gpu: GpuPowerRange) -> float:
    """The limit in watts `action` sets on a GPU of range `gpu` (fractions are of its largest limit), to the mW."""
    return round(action.power_limit_frac * gpu.max_w, 3)


def loss_so_far(policy: Policy, state: EngineState) -> float | None:
    """The mean throughput loss of the course so far (a fraction), the interval running now counted as planned.

    Each interval adds `weight x (D - loss)` to the bank and `weight` to the elapsed time, so the time-weighted mean
    loss is `D - bank / elapsed`. None for `tiers` (no budget) and before any interval.
    """
    if not isinstance(policy, OptimizePolicy) or state.elapsed <= 0:
        return None
    return policy.max_throughput_loss - state.loss_bank / state.elapsed
