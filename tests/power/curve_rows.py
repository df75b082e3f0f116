"""`power simulate` on a small curve file written row by row, for the tests of curve rows it must refuse.

Two test modules check refusals of bad curve rows (file:line, the curve hint, exit 2) the same way; the check and
the command line are here once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from power_data import series, write_prices

HEADER = "gpu,workload,pl_frac,throughput_rel,power_rel\n"
CURVE_HINT = "hint: a curve file is CSV with the columns gpu,workload,pl_frac,throughput_rel,power_rel"


def simulate(prices: Path, curve: Path, *extra: str) -> list[str]:
    """The arguments of `power simulate` for GPU `x`, workload `w`, D = 0.05 and day-ahead prices, then `extra`."""
    return [
        "power", "simulate", "--prices", str(prices), "--curve", str(curve), "--gpu", "x", "--workload", "w",
        "--max-throughput-loss", "0.05", "--price-visibility", "day-ahead", *extra,
    ]  # fmt: skip


def assert_curve_row_refused(cli: Any, tmp_path: Path, rows: str, message: str) -> None:
    """`power simulate` on a curve of HEADER + `rows` exits 2 with `factoryctl: CURVE{message}` and the curve hint."""
    curve = tmp_path / "c.csv"
    curve.write_text(HEADER + rows)
    prices = write_prices(tmp_path / "p.csv", series([10.0, 20.0]))
    result = cli(*simulate(prices, curve))
    assert result.exit_code == 2, result.stderr
    assert f"factoryctl: {curve}{message}" in result.stderr
    assert CURVE_HINT in result.stderr
