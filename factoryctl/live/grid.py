"""The header's grid line: the price now, where it is heading, and what the factory's power costs per hour.

Reads the price source factory.yaml names (`power.price_source` + `power.prices`), resolved as every command
resolves it (factoryctl.power.plugins): the built-in `csv` or a plugin from `factoryctl.price_sources.v1`, imported
only here, when configured. A CSV file is read again only when it changes (a bad file too: its error stays in
`error` until then); a plugin is asked again every `PLUGIN_REFRESH_S` (its failure too). The interval is the
series' median spacing, as `price show` and the simulator take it. No source, or no published price now, gives
`None`, which the header shows as `n/a`: a price is never guessed. A bad file's or a failed plugin's `error`
(one sentence naming the file, or the plugin and its package) travels in the snapshot: the header says `n/a` with
a marker and a notification names the problem. Imports no Textual.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError
from factoryctl.live.services import PriceNow
from factoryctl.model.power import PricePoint

if TYPE_CHECKING:
    from factoryctl.power.plugins import LoadedPriceSource

#: How often a plugin's prices are fetched again (day-ahead and 15-minute feeds change far more slowly).
PLUGIN_REFRESH_S = 300.0


class GridPrice:
    """Price now, trend and cost per hour from the configured price source."""

    def __init__(self, config: FactoryConfig) -> None:
        power = config.settings.power
        self._name, self._argument = power.price_source, power.prices
        self._base = config.path.parent if config.path is not None and config.path.exists() else None
        self._source: LoadedPriceSource | None = None
        self._points: tuple[PricePoint, ...] = ()
        self._times: list[int] = []
        self._stamp: tuple[float, int] | None = None
        self._fetched_at: float | None = None
        self._lasts: tuple[int, ...] = ()  # how long each row's price holds (its own interval)
        #: Why the source gives no price (a bad file, a failed plugin), shown with `n/a`; None when it loaded.
        self.error: str | None = None

    def _load(self, now: float) -> None:
        if self._name is None:
            return
        from factoryctl.power.intervals import row_intervals

        try:
            if not self._due(now):
                return
            assert self._source is not None
            points = self._source.fetch()
        except FactoryError as exc:
            self._points, self.error = (), exc.message
        else:
            self._points, self.error = points, None
        self._times = [p.timestamp_s for p in self._points]
        offset = self._source.utc_offset_s if self._source is not None else 0  # the market's clock
        self._lasts = row_intervals(self._times, offset).durations_s  # a file may go from hourly to 15-minute rows

    def _due(self, now: float) -> bool:
        """Open the source if needed; True when its prices should be fetched again (a file changed, time passed)."""
        if self._source is None:
            from factoryctl.power.plugins import open_price_source

            if self.error is not None and self._fetched_at is not None and now - self._fetched_at < PLUGIN_REFRESH_S:
                return False  # a plugin that failed to load is tried again after PLUGIN_REFRESH_S, not every frame
            self._fetched_at = now
            self._source = open_price_source(self._name or "", self._argument, self._base)
            self._stamp = None
        path = getattr(self._source.source, "path", None) if self._source.builtin else None
        if path is None:
            if self._fetched_at is not None and self._stamp is not None and now - self._fetched_at < PLUGIN_REFRESH_S:
                return False
            self._fetched_at, self._stamp = now, (now, 0)
            return True
        try:
            stat = path.stat()
        except OSError as exc:
            self._stamp = None
            raise FactoryError(f"cannot read {path}: {exc.strerror}") from None
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return False
        self._stamp = stamp  # a bad file is not parsed again until it changes
        return True

    def outlook(self, now: float, hours: int = 24) -> tuple[float | None, ...]:
        """The price in force at now and at each of the next hours, as far as published (at most `hours`).

        One value an hour whatever the file's interval, so "price next N h" means hours with hourly and
        15-minute files alike; an hour that falls in a hole of the file is None.
        """
        self._load(now)
        if self.now(now, None)[0] is None:
            return ()
        prices: list[float | None] = []
        for hour in range(hours):
            moment = int(now) + hour * 3600
            index = bisect_right(self._times, moment) - 1
            if index == len(self._times) - 1 and moment >= self._times[index] + self._lasts[index]:
                break  # past the last published price
            inside = moment < self._times[index] + self._lasts[index]
            prices.append(self._points[index].price_per_mwh if inside else None)
        return tuple(prices)

    def now(self, now: float, power_kw: float | None) -> tuple[PriceNow | None, float | None]:
        """(price of the interval running at `now` with the change to the next one, cost per hour at `power_kw`)."""
        self._load(now)
        index = bisect_right(self._times, int(now)) - 1
        if index < 0:
            return None, None
        if now >= self._times[index] + self._lasts[index]:
            return None, None  # the file ends before now, or has a gap here: no price is known for this interval
        current = self._points[index].price_per_mwh
        if current is None:
            return None, None
        following = self._points[index + 1].price_per_mwh if index + 1 < len(self._points) else None
        price = PriceNow(current, "", None if following is None else following - current)
        cost = current * power_kw / 1000 if power_kw is not None else None
        return price, cost
