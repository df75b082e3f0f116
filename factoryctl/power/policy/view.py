"""What a policy may know at one instant: the prices published by then, and nothing else.

Causality is enforced by construction: the engine only ever receives a `PriceView`, and whoever builds it (the
simulator from a file, the controller from the store) decides what has been published. The helpers here answer
the questions every policy asks of it: the current price if known, the newest known price, a short-term estimate.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from factoryctl.model.power import PricePoint

DAY_S = 86400


@dataclass(frozen=True)
class PriceView:
    """Prices visible at `now_s` (sorted by time, past and already-published future), and the interval lengths.

    `interval_s` is the series' usual interval; `duration_s` is how long the interval starting now lasts (None: the
    usual one), which differs when a series changes resolution (hourly rows, then 15-minute ones).
    """

    now_s: int
    interval_s: int
    points: Sequence[PricePoint]
    duration_s: int | None = None

    @property
    def weight(self) -> float:
        """The interval starting now, in usual intervals (1.0 unless the series changes resolution)."""
        return 1.0 if self.duration_s is None else self.duration_s / self.interval_s

    @cached_property
    def _times(self) -> list[int]:
        return [p.timestamp_s for p in self.points]

    def price_at(self, timestamp_s: int) -> float | None:
        """The published price of the interval starting at `timestamp_s`, if any."""
        index = bisect_left(self._times, timestamp_s)
        if index < len(self.points) and self.points[index].timestamp_s == timestamp_s:
            return self.points[index].price_per_mwh
        return None

    @property
    def current(self) -> float | None:
        """The price of the interval starting now, when already published (day-ahead markets)."""
        return self.price_at(self.now_s)

    def newest_known(self) -> PricePoint | None:
        """The latest interval at or before now with a published price."""
        index = bisect_left(self._times, self.now_s + 1)
        for point in reversed(self.points[:index]):
            if point.price_per_mwh is not None:
                return point
        return None

    def age_s(self) -> int | None:
        """How long ago the newest known price's interval started (None when nothing is known)."""
        newest = self.newest_known()
        return None if newest is None else self.now_s - newest.timestamp_s

    def known_between(self, start_s: int, end_s: int) -> list[float]:
        """Published prices of intervals starting in [start_s, end_s)."""
        low, high = bisect_left(self._times, start_s), bisect_left(self._times, end_s)
        return [p.price_per_mwh for p in self.points[low:high] if p.price_per_mwh is not None]

    def known_from_now(self) -> list[float]:
        """Published prices of intervals from now on (the visible future, including now)."""
        return self.known_between(self.now_s, 1 << 62)

    def last_published(self) -> float | None:
        """The current interval's price when published, else the newest published price (what `tiers` compares).

        A threshold an operator sets should fire on a price someone published, never on a forecast.
        """
        current = self.current
        if current is not None:
            return current
        newest = self.newest_known()
        return None if newest is None else newest.price_per_mwh

    def estimate(self) -> float | None:
        """The current interval's price: the published one, else a short-term forecast from the past.

        The forecast is the mean of two simple ones: persistence (the newest known price) and seasonal
        persistence (that price moved by yesterday's change over the same hours, since prices follow a daily
        shape). Averaging forecasts is the textbook robust choice, and a cost that is linear in the price is
        minimised in expectation by the mean forecast. Without yesterday's prices it is plain persistence.
        """
        current = self.current
        if current is not None:
            return current
        newest = self.newest_known()
        if newest is None or newest.price_per_mwh is None:
            return None
        then = self.price_at(self.now_s - DAY_S)
        before = self.price_at(newest.timestamp_s - DAY_S)
        if then is None or before is None:
            return newest.price_per_mwh
        return newest.price_per_mwh + (then - before) / 2
