"""Reading power curves from CSV and picking one GPU and workload out of a file that holds many.

Curve files (docs/power.md, Units and data files) have the columns `gpu,workload,pl_frac,throughput_rel,power_rel`
and may carry `max_power_limit_w` and `power_limit_w`, which give the GPU's range in watts. Names are matched
without regard to case, and a workload may be named by its full name (`squad/bert_base`) or by either half when
that is unambiguous (`squad`), so operators can type what they see in the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factoryctl.errors import UsageError
from factoryctl.model.power import CurvePoint, GpuPowerRange
from factoryctl.power.csv_file import FieldError, parse_number, read_csv_rows
from factoryctl.power.curve import FRAC_EPSILON, PowerCurve, RelativePowerRange
from factoryctl.textfile import exact_number

CURVE_COLUMNS = ("gpu", "workload", "pl_frac", "throughput_rel", "power_rel")
#: The largest `throughput_rel` or `power_rel` accepted. Both are relative to the largest limit, so a measurement
#: may exceed 1 a little (noise, or a workload that runs faster capped); twice the largest limit's value is not a
#: measurement but a unit or column mistake.
MAX_REL = 2.0
#: The largest power limit in watts a curve file may give: no single GPU comes near it (the largest are about
#: 1,200 W), so more is a unit mistake (milliwatts).
MAX_LIMIT_W = 10_000.0
#: How far a row's largest limit may differ from another's (or `power_limit_w / pl_frac` from `max_power_limit_w`),
#: relatively: measured limits are whole watts and `pl_frac` is rounded, so they agree only this closely.
WATTS_TOLERANCE = 0.01


@dataclass(frozen=True)
class CurveRow:
    """One measured point with the names it belongs to and, when known, its limit in watts."""

    gpu: str
    workload: str
    point: CurvePoint
    limit_w: float | None
    max_limit_w: float | None


def _optional_watts(row: dict[str, str], key: str) -> float | None:
    """A power limit in watts, or None when the column is absent or empty; it must be in (0, MAX_LIMIT_W].

    An infinite or NaN limit crashed the simulator (an IndexError deep in the curve); a negative or absurd one gave
    a GPU range that meant nothing, silently.
    """
    text = row.get(key)
    if text is None or not text.strip():
        return None
    watts = parse_number(text, key)
    if not (math.isfinite(watts) and 0 < watts <= MAX_LIMIT_W):
        raise FieldError(
            f"{key} is {text.strip()}, which is not a GPU's power limit",
            hint=f"{key} is in watts: a number above 0 and at most {MAX_LIMIT_W:,.0f}; leave the field empty when it"
            " is not known.",
        )
    return watts


def _implied_max_w(limit_w: float | None, max_w: float | None, pl_frac: float) -> float | None:
    """The GPU's largest limit a row gives: `max_power_limit_w`, or `power_limit_w / pl_frac`; both must agree."""
    if limit_w is None:
        return max_w
    implied = limit_w / pl_frac
    if max_w is not None and abs(implied - max_w) > WATTS_TOLERANCE * max_w:
        raise FieldError(
            f"power_limit_w {exact_number(limit_w)} at pl_frac {exact_number(pl_frac)} is a largest limit of"
            f" {exact_number(implied)} W, but max_power_limit_w is {exact_number(max_w)}",
            hint="pl_frac is power_limit_w / max_power_limit_w; check that the columns are not swapped.",
        )
    return max_w if max_w is not None else implied


def _curve_row(row: dict[str, str]) -> CurveRow:
    values = {key: parse_number(row[key], key) for key in ("pl_frac", "throughput_rel", "power_rel")}
    for key, value in values.items():
        if not math.isfinite(value):
            raise ValueError(f"{key} is {value}; a measured value must be a finite number")
    if not 0 < values["pl_frac"] <= 1 + FRAC_EPSILON:
        raise ValueError(f"pl_frac {values['pl_frac']} is outside (0, 1]: it is relative to the largest power limit")
    for key in ("throughput_rel", "power_rel"):
        if not 0 < values[key] <= MAX_REL:
            raise ValueError(
                f"{key} {exact_number(values[key])} is outside (0, {MAX_REL:g}]: a GPU under a cap still works and draws power,"
                " relative to its largest limit"
            )
    point = CurvePoint(values["pl_frac"], values["throughput_rel"], values["power_rel"])
    limit_w = _optional_watts(row, "power_limit_w")
    max_w = _optional_watts(row, "max_power_limit_w")
    return CurveRow(row["gpu"].strip(), row["workload"].strip(), point, limit_w, max_w)


def _curve_reader() -> Callable[[dict[str, str]], CurveRow]:
    """Parse rows in file order, refusing what would make a GPU and workload's curve a guess.

    A limit measured twice (which row holds?), or rows that give the GPU different largest limits (the larger was
    silently taken).
    """
    seen: set[tuple[str, str, float]] = set()
    largest_w: dict[tuple[str, str], tuple[float, bool]] = {}  # the first row's, and whether max_power_limit_w gave it

    def parse(row: dict[str, str]) -> CurveRow:
        parsed = _curve_row(row)
        name = (parsed.gpu.lower(), parsed.workload.lower())
        if (*name, parsed.point.pl_frac) in seen:
            raise ValueError(
                f"{parsed.gpu} {parsed.workload} measures pl_frac {parsed.point.pl_frac} twice; keep one row per limit"
            )
        seen.add((*name, parsed.point.pl_frac))
        implied = _implied_max_w(parsed.limit_w, parsed.max_limit_w, parsed.point.pl_frac)
        if implied is None:
            return parsed
        given = parsed.max_limit_w is not None
        earlier, earlier_given = largest_w.setdefault(name, (implied, given))
        tolerance = 1e-9 if given and earlier_given else WATTS_TOLERANCE  # two max_power_limit_w: the same number
        if abs(implied - earlier) > tolerance * earlier:
            raise FieldError(
                f"{parsed.gpu} {parsed.workload} has a largest power limit of {exact_number(implied)} W here but"
                f" {exact_number(earlier)} W on an earlier row",
                hint="a GPU has one largest limit: every row of a GPU and workload gives the same max_power_limit_w (and"
                " power_limit_w / pl_frac).",
            )
        return parsed

    return parse


def read_curve_rows(path: Path) -> list[CurveRow]:
    """Every row of a curve file; errors name the file and line."""
    hint = (
        "a curve file is CSV with the columns gpu,workload,pl_frac,throughput_rel,power_rel (fractions of the maximum)."
    )
    return read_csv_rows(path, CURVE_COLUMNS, _curve_reader(), "curve file", "curve row", hint)


def _match(wanted: str, names: set[str], what: str, path: Path) -> str:
    key = wanted.strip().lower()
    exact = [n for n in names if n.lower() == key]
    if exact:
        return exact[0]
    partial = sorted(n for n in names if key in (part.lower() for part in n.split("/")))
    if len(partial) == 1:
        return partial[0]
    known = ", ".join(sorted(names))
    if partial:
        raise UsageError(f"{what} {wanted!r} is ambiguous in {path}", hint=f"one of: {', '.join(partial)}")
    raise UsageError(f"no {what} {wanted!r} in {path}", hint=f"known: {known}")


def load_curve(path: Path, gpu: str, workload: str) -> tuple[PowerCurve, GpuPowerRange]:
    """The curve of `gpu` running `workload`, and the GPU's power range (in watts when the file gives them).

    Without watt columns the range is a `RelativePowerRange` in units of the largest limit (max 1.0), on which a
    policy's `_w` settings are refused (they cannot be converted); the file's lowest measured limit is the minimum.
    """
    rows = read_curve_rows(path)
    gpu_name = _match(gpu, {r.gpu for r in rows}, "GPU", path)
    of_gpu = [r for r in rows if r.gpu == gpu_name]
    workload_name = _match(workload, {r.workload for r in of_gpu}, f"workload for {gpu_name}", path)
    chosen = [r for r in of_gpu if r.workload == workload_name]
    curve = PowerCurve.from_points((r.point for r in chosen), name=f"{gpu_name} {workload_name}")
    max_candidates = [r.max_limit_w for r in chosen if r.max_limit_w] or [
        r.limit_w / r.point.pl_frac for r in chosen if r.limit_w and r.point.pl_frac
    ]
    if not max_candidates:
        return curve, RelativePowerRange(min_w=curve.min_frac, max_w=1.0, default_w=1.0)
    max_w = max(max_candidates)
    return curve, GpuPowerRange(min_w=curve.min_frac * max_w, max_w=max_w, default_w=max_w)


#: The name of the curve the policy commands use when factory.yaml names none (`power.curve`).
BUILTIN_CURVE_NAME = "built-in a40 squad/bert_base"


def builtin_curve() -> PowerCurve:
    """The simulated driver's embedded curve (Zeus, A40, SQuAD/BERT-base) as a PowerCurve, read by its limits.

    The driver's points are `(power_rel, throughput_rel)` measured at the limits `ZEUS_A40_LIMITS_W` of the A40's
    300 W, so each point's `pl_frac` is its limit over 300 W: the same rows as `a40,squad/bert_base` of the Zeus
    curve file (`gpu_power_curves.csv`), whose `pl_frac` is rounded to three places.
    """
    from factoryctl.sim.curve import ZEUS_A40_BERT, ZEUS_A40_LIMITS_W, ZEUS_A40_MAX_W

    points = (
        CurvePoint(limit / ZEUS_A40_MAX_W, throughput, power)
        for limit, (power, throughput) in zip(ZEUS_A40_LIMITS_W, ZEUS_A40_BERT, strict=True)
    )
    return PowerCurve.from_points(points, name=BUILTIN_CURVE_NAME)
