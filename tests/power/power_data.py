"""Small data for the power tests: a toy curve and generated price series (nothing from ../shared)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from factoryctl.model.power import CurvePoint, GpuPowerRange, PricePoint
from factoryctl.power.curve import PowerCurve

#: A made-up, concave-ish curve for a 400 W GPU ("tgpu"), in the shared curve-file format.
CURVE_ROWS = (
    (100, 0.25, 0.30, 0.35),
    (150, 0.375, 0.52, 0.45),
    (200, 0.5, 0.70, 0.56),
    (250, 0.625, 0.83, 0.67),
    (300, 0.75, 0.92, 0.78),
    (350, 0.875, 0.98, 0.89),
    (400, 1.0, 1.0, 1.0),
)
CURVE_HEADER = "gpu,max_power_limit_w,workload,batch_size,power_limit_w,pl_frac,throughput_rel,avg_power_w,power_rel\n"
START_S = 1_700_006_400  # 2023-11-15T00:00:00Z, a UTC midnight
HOUR = 3600


def curve_csv_text() -> str:
    lines = [CURVE_HEADER]
    for workload in ("bench/toy", "other/toy"):
        for watts, frac, thr, pw in CURVE_ROWS:
            lines.append(f"TGPU,400,{workload},32,{watts},{frac},{thr},{pw * 300:.1f},{pw}\n")
    return "".join(lines)


def toy_curve() -> tuple[PowerCurve, GpuPowerRange]:
    points = [CurvePoint(frac, thr, pw) for _, frac, thr, pw in CURVE_ROWS]
    return PowerCurve.from_points(points, "tgpu bench/toy"), GpuPowerRange(100.0, 400.0, 400.0)


def series(values: Sequence[float | None], start_s: int = START_S, step_s: int = HOUR) -> list[PricePoint]:
    return [PricePoint(start_s + i * step_s, v) for i, v in enumerate(values)]


def flat(hours: int, price: float = 80.0) -> list[float | None]:
    return [price] * hours


def daily_sine(hours: int, mean: float = 90.0, amplitude: float = 60.0) -> list[float | None]:
    return [mean + amplitude * math.sin(2 * math.pi * (h % 24 - 6) / 24) for h in range(hours)]


def spikes(hours: int) -> list[float | None]:
    return [1500.0 if h % 37 == 5 else 60.0 + (h % 24) for h in range(hours)]


def negative_stretches(hours: int) -> list[float | None]:
    return [-40.0 - (h % 5) if (h // 48) % 2 == 0 else 70.0 + 30 * math.sin(h / 4) for h in range(hours)]


SERIES: dict[str, Callable[[int], list[float | None]]] = {
    "flat": flat,
    "daily_sine": daily_sine,
    "spikes": spikes,
    "negative_stretches": negative_stretches,
}


def write_prices(path: Path, points: Sequence[PricePoint]) -> Path:
    from factoryctl.model.power import iso_utc_seconds

    rows = ["timestamp_utc,price_per_mwh"]
    rows += [f"{iso_utc_seconds(p.timestamp_s)},{'' if p.price_per_mwh is None else p.price_per_mwh}" for p in points]
    path.write_text("\n".join(rows) + "\n")
    return path
