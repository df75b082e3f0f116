"""Throughput under a power cap: a normalised measured curve, embedded so the driver needs no data file.

The numbers are the Zeus project's measurement of BERT-base fine-tuning (SQuAD, batch 32) on an NVIDIA A40 swept
over power limits of 100-300 W (Zeus, https://github.com/ml-energy/zeus, Apache-2.0; You, Chung and Chowdhury,
"Zeus: Understanding and Optimizing GPU Energy Consumption of DNN Training", NSDI'23). Each point is
`(power_rel, throughput_rel)`: the average power drawn under the cap relative to the uncapped draw, and the training
throughput relative to the uncapped throughput. The simulator reads it the other way round: when a cap lets a GPU
draw only a fraction of what its load demands, its work rate is the measured throughput at that fraction.

Between measured points the curve is linear; outside them nothing is extrapolated: below the lowest measured point
its throughput holds, as `power simulate` holds a curve's ends (docs/power.md, "Definitions"), so the driver and
the simulator read a curve the same way.
"""

from __future__ import annotations

from typing import Tuple

# (power_rel, throughput_rel), from pl_frac 0.333 .. 1.0 of the A40's 300 W.
ZEUS_A40_BERT: Tuple[Tuple[float, float], ...] = (
    (0.397, 0.246),
    (0.460, 0.382),
    (0.545, 0.573),
    (0.626, 0.786),
    (0.707, 0.885),
    (0.787, 0.940),
    (0.869, 0.973),
    (0.941, 0.996),
    (1.000, 1.000),
)
#: The power limits (W) the points above were measured at, in order: the Zeus sweep's 25 W steps over the A40's
#: 100-300 W range (`ZEUS_A40_MAX_W` is its largest limit), so point i's pl_frac is `ZEUS_A40_LIMITS_W[i] / 300`.
#: The policy commands read the curve by limit through these (factoryctl.power.curve_file.builtin_curve).
ZEUS_A40_LIMITS_W: Tuple[float, ...] = (100.0, 125.0, 150.0, 175.0, 200.0, 225.0, 250.0, 275.0, 300.0)
ZEUS_A40_MAX_W = 300.0


def throughput_fraction(power_fraction: float) -> float:
    """Relative work rate when a GPU may draw `power_fraction` (0..1+) of the power its load demands."""
    points = ZEUS_A40_BERT
    if power_fraction >= 1.0:
        return 1.0
    if power_fraction <= points[0][0]:
        return points[0][1]  # below the lowest measurement its value holds (no extrapolation)
    for i in range(1, len(points)):
        (x0, y0), (x1, y1) = points[i - 1], points[i]
        if power_fraction <= x1:
            return y0 + (y1 - y0) * (power_fraction - x0) / (x1 - x0)
    return 1.0  # pragma: no cover - the last point is 1.0
