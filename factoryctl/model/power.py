"""Prices, power curves and power actions: the data the power-policy engine reads and the decisions it writes.

These are plain frozen values so the pure policy engine, the simulator, the future applier and the dashboard can
share them without importing any IO. Times are UTC epoch seconds (`int`); a price the feed could not give is
`None`, never NaN, so "unknown" cannot leak into arithmetic unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

#: 400 Gregorian years, in seconds: the calendar (leap days included) repeats after them.
_CALENDAR_CYCLE_S = 146_097 * 86_400


def iso_utc_seconds(timestamp_s: int) -> str:
    """ISO-8601 UTC with `Z` at one-second resolution, as price files and schedules write timestamps.

    The year always has four digits (`0999-...`): strftime's `%Y` writes year 999 as `999`, which no ISO-8601 reader
    takes back. Any int is written: a time past 9999 (the end of a row in its last hour, or a plugin's far
    timestamp_s) takes ISO-8601's expanded year, `+10000-01-01T00:00:00Z`, where `datetime` has no year to give.
    """
    cycles, rest_s = divmod(timestamp_s, _CALENDAR_CYCLE_S)  # rest_s: 1970 to 2369, which datetime can hold
    moment = datetime.fromtimestamp(rest_s, tz=timezone.utc)
    year = moment.year + 400 * cycles
    written = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return f"{written}-{moment:%m-%dT%H:%M:%S}Z"


@dataclass(frozen=True)
class PricePoint:
    """The grid price of one interval starting at `timestamp_s`; `price_per_mwh` is `None` when not published."""

    timestamp_s: int
    price_per_mwh: float | None


@dataclass(frozen=True)
class CurvePoint:
    """One measured operating point of a GPU running a workload, relative to running at its largest limit."""

    pl_frac: float
    throughput_rel: float
    power_rel: float


@dataclass(frozen=True)
class GpuPowerRange:
    """The power limits a GPU accepts (`nvidia-smi --query-gpu=power.min_limit,power.max_limit,power.default_limit`).

    `max_w` is the reference of `power_limit_frac` (frac 1.0 = `max_w`).
    """

    min_w: float
    max_w: float
    default_w: float

    def frac(self, watts: float) -> float:
        """A limit in watts as a fraction of the largest limit."""
        return watts / self.max_w

    @property
    def min_frac(self) -> float:
        """The lowest limit the GPU accepts, as a fraction of its largest."""
        return self.min_w / self.max_w

    @property
    def default_frac(self) -> float:
        """The GPU's default limit as a fraction of its largest."""
        return self.default_w / self.max_w


@dataclass(frozen=True)
class PowerAction:
    """One decision of the policy engine: the power limit for the interval starting at `timestamp_s`.

    `reason` says which rule set the limit (`ladder`, `tier`, `failsafe`, `dwell`, `ramp`, `budget`, `floor`);
    `clamped` is true when the rule asked for a limit outside the GPU's range and it was clamped (the applier
    records that in the audit log).
    """

    timestamp_s: int
    power_limit_frac: float
    reason: str
    clamped: bool = False
    price_used_per_mwh: float | None = None
