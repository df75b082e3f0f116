"""The causal multiplier of `optimize`: what one unit of throughput is worth, from the prices visible now.

The clairvoyant optimum is a price ladder: in each interval pick the limit minimising price x power - lam x
throughput, with one multiplier `lam` for the whole horizon (see `lagrange`). Online, lam is unknown because the
future is. This module estimates it from a reference sample of prices (the recent past, standing in for the
unknown future, plus every already-published future price) by solving the same LP on that sample at a target
loss rate steered by the budget still unspent:

- `period` budget: the unspent budget is spread evenly over the intervals left in the period (pacing), and the
  guard only forbids spending more than what is left;
- `rolling` budget: every prefix must stay within D, so nothing can be borrowed; above a reserve of `reserve_s`
  worth of budget the surplus is spent over `spend_s`, below it the rate drops to rebuild it.

Nothing here is fitted to a market: the defaults are a week of history (prices repeat weekly) and one day for
reserve and spending (prices cycle daily).
"""

from __future__ import annotations

from collections.abc import Sequence

from factoryctl.model.power import PricePoint
from factoryctl.power.policy.config import OptimizePolicy
from factoryctl.power.policy.lagrange import LagrangeChains, SortedSample, multiplier
from factoryctl.power.policy.view import PriceView


def target_loss_rate(policy: OptimizePolicy, loss_bank: float, interval_s: int, remaining: float | None) -> float:
    """The mean loss to aim for over the reference sample, given the unspent budget (in usual intervals).

    `remaining` is the usual intervals left in the budget period, this one included (None: rolling budget).
    """
    budget = policy.max_throughput_loss
    if remaining is not None:
        rate = budget + loss_bank / max(remaining, 1)
    else:
        reserve = budget * policy.reserve_s / interval_s
        spend = max(policy.spend_s / interval_s, 1.0)
        rate = budget + (loss_bank - reserve) / spend
    return min(max(rate, 0.0), 1.0)


def loss_allowance(
    policy: OptimizePolicy, loss_bank: float, remaining: float | None, least_loss: float, weight: float = 1.0
) -> float:
    """The largest loss this interval (`weight` usual intervals long) may take without the budget being exceeded.

    With a period budget the time after this interval must still be able to run at its least loss (`least_loss`,
    0 when the curve's top limit loses nothing); with a rolling one nothing may be borrowed. The bank after this
    interval, `loss_bank + weight x (D - loss)`, plus what the rest can still earn, must stay at least 0.
    """
    budget = policy.max_throughput_loss
    if remaining is None:
        return loss_bank / weight + budget
    return (loss_bank + budget * remaining - (remaining - weight) * max(least_loss, 0.0)) / weight


def reference_prices(policy: OptimizePolicy, view: PriceView) -> list[float]:
    """The recent past (`history_s`) and the published future: the sample the multiplier is priced on."""
    past = view.known_between(view.now_s - policy.history_s, view.now_s)
    return past + view.known_from_now()


class ReferenceWindow:
    """`reference_prices`, kept sorted from one interval to the next of a replay (`SortedSample`).

    From one view to the next of the same series the sample's rows only move forward (history drops rows at the
    back, publication adds them at the front), so only those rows are taken out and put in: an interval costs the
    rows that moved, not a sort of the whole sample (a year of 15-minute history was 35,000 prices sorted every
    15 minutes). The sample is exactly `reference_prices`' (same prices, so the same multiplier to the last bit);
    a view of another series, or one going back, starts it again. The series must not change under it (a replay's
    does not): rows already taken in are not read again.
    """

    def __init__(self) -> None:
        """An empty window, filled by the first `slide`."""
        self.sample = SortedSample()
        self._series: Sequence[PricePoint] | None = None
        self._start = 0
        self._stop = 0

    def slide(self, policy: OptimizePolicy, view: PriceView) -> SortedSample:
        """The reference sample of `view`, updated from the last one."""
        rows = view.rows_since(view.now_s - policy.history_s)
        series, start, stop = rows.series, rows.start, rows.stop
        if series is not self._series or start < self._start or stop < self._stop:
            self.sample, self._series, self._start, self._stop = SortedSample(), series, start, start
        for index in range(self._start, min(start, self._stop)):
            price = series[index].price_per_mwh
            if price is not None:
                self.sample.remove(price)
        for index in range(max(start, self._stop), stop):
            price = series[index].price_per_mwh
            if price is not None:
                self.sample.add(price)
        self._start, self._stop = start, stop
        return self.sample


def ladder_multiplier(
    policy: OptimizePolicy,
    chains: LagrangeChains,
    view: PriceView,
    loss_bank: float,
    remaining: float | None,
    window: ReferenceWindow | None = None,
) -> float:
    """The multiplier lam such that the ladder, run on the reference sample, loses the target rate.

    `window` keeps the sample sorted between the intervals of one replay (None: sorted afresh from `view`).
    """
    sample = SortedSample(reference_prices(policy, view)) if window is None else window.slide(policy, view)
    if not len(sample):
        return float("inf")
    rate = target_loss_rate(policy, loss_bank, view.interval_s, remaining)
    return multiplier(sample, chains, rate)
