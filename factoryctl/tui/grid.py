"""The header's grid line: the price now, where it is heading, and what the factory's power costs per hour.

Reads the price source factory.yaml names (`power.price_source` + `power.prices`); today that is the built-in
`csv` source. The file is read again only when it changes (a bad file too: its error stays in `error` until then),
and its interval is the series' median spacing, as `price show` and the simulator take it. No source, an unknown
source, or no published price now all give `None`, which the header shows as `n/a`: a price is never guessed. A bad
file's `error` travels in the snapshot: the header says `n/a (bad file)` and a notification names the problem.
Imports no Textual.
"""

from __future__ import annotations

import os
from bisect import bisect_right
from pathlib import Path

from factoryctl.config import FactoryConfig
from factoryctl.errors import FactoryError
from factoryctl.model.power import PricePoint
from factoryctl.tui.services import PriceNow


class GridPrice:
    """Price now, trend and cost per hour from the configured price source."""

    def __init__(self, config: FactoryConfig) -> None:
        power = config.settings.power
        self.path: Path | None = None
        if power.price_source == "csv" and power.prices:
            path = Path(os.path.expanduser(power.prices))
            base = config.path.parent if config.path is not None and config.path.exists() else Path.cwd()
            self.path = path if path.is_absolute() else base / path
        self._points: tuple[PricePoint, ...] = ()
        self._times: list[int] = []
        self._stamp: tuple[float, int] | None = None
        self._step = 3600
        #: Why the price file gives no price (unreadable or invalid), shown with `n/a`; None when it loaded.
        self.error: str | None = None

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            stat = self.path.stat()
        except OSError as exc:
            self._points, self._times, self._stamp = (), [], None
            self.error = f"cannot read {self.path}: {exc.strerror}"
            return
        stamp = (stat.st_mtime, stat.st_size)
        if stamp == self._stamp:
            return
        from factoryctl.power.sources import CsvPriceSource, price_interval_s

        self._stamp = stamp  # a bad file is not parsed again until it changes
        try:
            self._points = CsvPriceSource(self.path).fetch()
        except FactoryError as exc:
            self._points, self.error = (), exc.message
        else:
            self.error = None
        self._times = [p.timestamp_s for p in self._points]
        self._step = price_interval_s(self._points)

    def outlook(self, now: float, intervals: int = 24) -> tuple[float | None, ...]:
        """Prices of the interval running now and the next ones, as far as published (at most `intervals`)."""
        self._load()
        index = bisect_right(self._times, int(now)) - 1
        if index < 0 or self.now(now, None)[0] is None:
            return ()
        return tuple(p.price_per_mwh for p in self._points[index : index + intervals])

    def now(self, now: float, power_kw: float | None) -> tuple[PriceNow | None, float | None]:
        """(price of the interval running at `now` with the change to the next one, cost per hour at `power_kw`)."""
        self._load()
        index = bisect_right(self._times, int(now)) - 1
        if index < 0:
            return None, None
        if now >= self._times[index] + self._step:
            return None, None  # the file ends before now, or has a gap here: no price is known for this interval
        current = self._points[index].price_per_mwh
        if current is None:
            return None, None
        following = self._points[index + 1].price_per_mwh if index + 1 < len(self._points) else None
        price = PriceNow(current, "", None if following is None else following - current)
        cost = current * power_kw / 1000 if power_kw is not None else None
        return price, cost
