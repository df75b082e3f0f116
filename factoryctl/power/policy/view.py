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
from typing import overload

from factoryctl.model.power import PricePoint

DAY_S = 86400


class SeriesWindow(Sequence[PricePoint]):
    """Rows `[start, stop)` of a price series, with the series' timestamps, and no copy of either.

    A replay shows the engine one window per interval; slicing the series each time copied the whole lookback
    (a year of 15-minute rows with a year of history: 35,000 rows copied 35,000 times).
    """

    __slots__ = ("series", "start", "stop", "times")

    def __init__(self, series: Sequence[PricePoint], times: Sequence[int], start: int, stop: int) -> None:
        """The rows of `series` (whose timestamps are `times`) from index `start` to before `stop`."""
        self.series = series
        self.times = times
        self.start = start
        self.stop = max(start, stop)

    def __len__(self) -> int:
        return self.stop - self.start

    @overload
    def __getitem__(self, index: int) -> PricePoint: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[PricePoint]: ...

    def __getitem__(self, index: int | slice) -> PricePoint | Sequence[PricePoint]:
        if isinstance(index, slice):
            return [self.series[i] for i in range(self.start, self.stop)[index]]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        return self.series[self.start + index % len(self)]


@dataclass(frozen=True)
class PriceView:
    """Prices visible at `now_s` (sorted by time, past and already-published future), and the interval lengths.

    `interval_s` is the series' usual interval; `duration_s` is how long the interval starting now lasts (None: the
    usual one), which differs when a series changes resolution (hourly rows, then 15-minute ones). `points` may be
    a `SeriesWindow` (what a replay passes), read in place.
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
    def _rows(self) -> SeriesWindow:
        """The visible rows as indexes `[start, stop)` into a series and its timestamps (copied from no window)."""
        if isinstance(self.points, SeriesWindow):
            return self.points
        return SeriesWindow(self.points, [p.timestamp_s for p in self.points], 0, len(self.points))

    def _index(self, timestamp_s: int) -> int:
        """The index in the series of the first visible row starting at or after `timestamp_s`."""
        rows = self._rows
        return bisect_left(rows.times, timestamp_s, rows.start, rows.stop)

    def price_at(self, timestamp_s: int) -> float | None:
        """The published price of the interval starting at `timestamp_s`, if any."""
        rows, index = self._rows, self._index(timestamp_s)
        if index < rows.stop and rows.times[index] == timestamp_s:
            return rows.series[index].price_per_mwh
        return None

    @property
    def current(self) -> float | None:
        """The price of the interval starting now, when already published (day-ahead markets)."""
        return self.price_at(self.now_s)

    def newest_known(self) -> PricePoint | None:
        """The latest interval at or before now with a published price."""
        rows = self._rows
        for index in range(self._index(self.now_s + 1) - 1, rows.start - 1, -1):
            if rows.series[index].price_per_mwh is not None:
                return rows.series[index]
        return None

    def age_s(self) -> int | None:
        """How long ago the newest known price's interval started (None when nothing is known)."""
        newest = self.newest_known()
        return None if newest is None else self.now_s - newest.timestamp_s

    def known_between(self, start_s: int, end_s: int) -> list[float]:
        """Published prices of intervals starting in [start_s, end_s)."""
        series, low, high = self._rows.series, self._index(start_s), self._index(end_s)
        return [p.price_per_mwh for p in (series[i] for i in range(low, high)) if p.price_per_mwh is not None]

    def known_from_now(self) -> list[float]:
        """Published prices of intervals from now on (the visible future, including now)."""
        return self.known_between(self.now_s, 1 << 62)

    def rows_since(self, start_s: int) -> SeriesWindow:
        """The visible rows from the first starting at or after `start_s` to the last published, in place.

        For a caller that keeps what it derives from them between views of the same series (`ReferenceWindow`):
        the indexes are the series', so a later view's rows can be told apart from the ones already seen.
        """
        rows = self._rows
        return SeriesWindow(rows.series, rows.times, self._index(start_s), rows.stop)

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
