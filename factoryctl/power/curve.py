"""A GPU's throughput-vs-power curve, as the simulator's definitions fix it, and the choices it offers a policy.

Every saving the power engine promises is read off this curve, so its interpolation is pinned down once here:
`throughput_rel` and `power_rel` between measured points are linear in `pl_frac` and clamped at the ends (below
the lowest measured limit the lowest point holds). Pure standard library: the policy engine depends on it.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from factoryctl.errors import UsageError
from factoryctl.model.power import CurvePoint, GpuPowerRange

#: Two limits closer than this (as fractions of the largest limit) are the same setting.
FRAC_EPSILON = 1e-9


@dataclass(frozen=True)
class RelativePowerRange(GpuPowerRange):
    """A GPU's range known only relative to its largest limit (1.0): its curve file gives no watts.

    A curve without `max_power_limit_w` or `power_limit_w` still replays, but a limit given in watts (`cap_w: 200`)
    cannot be converted against it: read as a fraction of "1 W" it silently did nothing, or was refused as above
    "1 W". A policy parser sees this type and refuses every `_w` key instead (policy/config.py).
    """


@dataclass(frozen=True)
class PowerCurve:
    """Measured points sorted by `pl_frac`, with a name for messages (e.g. `a40 squad/bert_base`)."""

    points: tuple[CurvePoint, ...]
    name: str = "curve"

    @classmethod
    def from_points(cls, points: Iterable[CurvePoint], name: str = "curve") -> PowerCurve:
        """Sort and check measured points: at least one, distinct limits in (0, 1], finite values."""
        ordered = tuple(sorted(points, key=lambda p: p.pl_frac))
        if not ordered:
            raise UsageError(f"the power curve {name} has no points")
        for point in ordered:
            values = (point.pl_frac, point.throughput_rel, point.power_rel)
            if any(v != v or v in (float("inf"), float("-inf")) for v in values):
                raise UsageError(f"the power curve {name} has a non-finite value at pl_frac {point.pl_frac}")
            if not 0 < point.pl_frac <= 1 + FRAC_EPSILON:
                raise UsageError(
                    f"the power curve {name} has pl_frac {point.pl_frac} outside (0, 1]",
                    hint="pl_frac is relative to the curve's largest power limit.",
                )
        for before, after in itertools.pairwise(ordered):
            if after.pl_frac - before.pl_frac < FRAC_EPSILON:
                raise UsageError(f"the power curve {name} measures pl_frac {after.pl_frac} twice")
        return cls(ordered, name)

    @property
    def min_frac(self) -> float:
        """The lowest measured limit."""
        return self.points[0].pl_frac

    @property
    def max_frac(self) -> float:
        """The highest measured limit (1.0 for a curve relative to its largest limit)."""
        return self.points[-1].pl_frac

    @cached_property
    def _fracs(self) -> tuple[float, ...]:
        return tuple(p.pl_frac for p in self.points)

    def _interpolate(self, frac: float, attribute: str) -> float:
        points = self.points
        if frac <= points[0].pl_frac:
            return float(getattr(points[0], attribute))
        if frac >= points[-1].pl_frac:
            return float(getattr(points[-1], attribute))
        index = bisect_right(self._fracs, frac)
        left, right = points[index - 1], points[index]
        weight = (frac - left.pl_frac) / (right.pl_frac - left.pl_frac)
        low, high = float(getattr(left, attribute)), float(getattr(right, attribute))
        return low + weight * (high - low)

    def throughput_rel(self, frac: float) -> float:
        """Throughput at `frac`, relative to the largest limit."""
        return self._interpolate(frac, "throughput_rel")

    def power_rel(self, frac: float) -> float:
        """Average power at `frac`, relative to the largest limit."""
        return self._interpolate(frac, "power_rel")

    def point_at(self, frac: float) -> CurvePoint:
        """The (interpolated) operating point at `frac`."""
        return CurvePoint(frac, self.throughput_rel(frac), self.power_rel(frac))

    def points_between(self, low: float, high: float) -> tuple[CurvePoint, ...]:
        """The operating points a policy can pick within [low, high]: measured points there plus both ends."""
        inner = [p for p in self.points if low + FRAC_EPSILON < p.pl_frac < high - FRAC_EPSILON]
        ends = [self.point_at(low)] if high - low < FRAC_EPSILON else [self.point_at(low), self.point_at(high)]
        return tuple(sorted([*inner, *ends], key=lambda p: p.pl_frac))

    def best_frac(self, price: float, multiplier: float, low: float, high: float, min_throughput: float) -> float:
        """The limit in [low, high] minimising `price * power - multiplier * throughput` with a throughput floor.

        Both terms are linear along each segment of the curve, so the optimum is a measured point, an end of the
        range or a point where a segment crosses `min_throughput`; those are the only candidates. When no limit
        reaches `min_throughput`, the one with the most throughput wins. Ties go to more throughput.
        """
        candidates = list(self.points_between(low, high))
        candidates.extend(_crossings(candidates, min_throughput))
        feasible = [p for p in candidates if p.throughput_rel >= min_throughput - 1e-12]
        if not feasible:
            return max(candidates, key=lambda p: (p.throughput_rel, p.pl_frac)).pl_frac
        best = min(
            feasible,
            key=lambda p: (price * p.power_rel - multiplier * p.throughput_rel, -p.throughput_rel, -p.pl_frac),
        )
        return best.pl_frac


def _crossings(points: Sequence[CurvePoint], level: float) -> list[CurvePoint]:
    """Points where the piecewise-linear throughput between consecutive `points` equals `level`."""
    found: list[CurvePoint] = []
    for left, right in itertools.pairwise(points):
        low, high = left.throughput_rel, right.throughput_rel
        if (low - level) * (high - level) < 0:
            weight = (level - low) / (high - low)
            frac = left.pl_frac + weight * (right.pl_frac - left.pl_frac)
            power = left.power_rel + weight * (right.power_rel - left.power_rel)
            found.append(CurvePoint(frac, level, power))
    return found
