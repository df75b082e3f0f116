"""Power policy benchmark: saving and loss of `optimize` against the price-blind setting and the clairvoyant bound.

Usage (from the repository root; the data files are not part of the project):

    python benchmarks/bench_power.py                       # the issue's goal: a40 squad/bert_base, D = 0.05
    python benchmarks/bench_power.py --sweep               # every GPU and workload in the curve file, D in 2/5/10 %
    python benchmarks/bench_power.py --prices P.csv --curves C.csv --gpu v100 --workload imagenet -D 0.1
    python benchmarks/bench_power.py --quarter-hours [--years 4] [--history-hours 8760]   # 15-minute prices

For each price visibility it prints saving, loss, blind and bound savings, the fraction of the blind-to-bound
gap closed, whether the goal holds (loss <= D; gap >= 60 % day-ahead, >= 40 % realtime) and the wall time.
`--quarter-hours` replays the prices interpolated to 15 minutes (four rows an hour, linear to the next hour's price,
to the cent; `--years N` repeats the year N times, shifted), the size of a 15-minute market's year: the replay's
time per interval must not grow with the history (benchmarks/README.md, Session 21).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

from factoryctl.model.power import PricePoint
from factoryctl.power.curve_file import load_curve, read_curve_rows
from factoryctl.power.policy.config import OptimizePolicy
from factoryctl.power.simulator import simulate
from factoryctl.power.sources import CsvPriceSource

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GOAL = {"day-ahead": 0.60, "realtime": 0.40}


def run(
    prices, curves: Path, gpu: str, workload: str, max_loss: float, history_hours: float | None = None
) -> list[str]:
    curve, gpu_range = load_curve(curves, gpu, workload)
    lines = []
    for visibility in ("day-ahead", "realtime"):
        started = time.perf_counter()
        policy = OptimizePolicy(max_loss)
        if history_hours is not None:
            policy = replace(policy, history_s=round(history_hours * 3600))
        result = simulate(prices, curve, gpu_range, policy, visibility, max_loss)
        elapsed = time.perf_counter() - started
        score, gap = result.score, result.gap_fraction
        within = score.throughput_loss_pct <= 100 * max_loss + 1e-9
        goal = within and (gap is None or gap >= GOAL[visibility])
        lines.append(
            f"{curve.name:34} {max_loss:5.2f} {visibility:10} saving {score.saving_pct:7.3f} %  "
            f"loss {score.throughput_loss_pct:6.3f} %  blind {result.blind_saving_pct:7.3f} %  "
            f"bound {result.bound_saving_pct:7.3f} %  gap {'  n/a' if gap is None else f'{gap:5.3f}'}  "
            f"{'ok ' if goal else 'MISS'}  {elapsed:5.2f} s"
        )
    return lines


def quarter_hours(points: list[PricePoint], years: int = 1) -> list[PricePoint]:
    """Hourly prices as 15-minute rows: each hour's price moving linearly to the next's, to the cent; `years` copies."""
    span = points[-1].timestamp_s - points[0].timestamp_s + 3600
    rows = []
    for year in range(years):
        for index, point in enumerate(points):
            price = point.price_per_mwh
            after = points[index + 1].price_per_mwh if index + 1 < len(points) else price
            for k in range(4):
                value = None
                if price is not None:
                    value = float(f"{price + ((price if after is None else after) - price) * k / 4:.2f}")
                rows.append(PricePoint(point.timestamp_s + year * span + 900 * k, value))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prices", type=Path, default=DATA / "fr_2023.csv")
    parser.add_argument("--curves", type=Path, default=DATA / "gpu_power_curves.csv")
    parser.add_argument("--gpu", default="a40")
    parser.add_argument("--workload", default="squad/bert_base")
    parser.add_argument("-D", "--max-throughput-loss", type=float, default=0.05)
    parser.add_argument("--sweep", action="store_true", help="every GPU and workload, D in 0.02, 0.05, 0.10")
    parser.add_argument("--history-hours", type=float, default=None, help="override the policy's history_hours")
    parser.add_argument("--quarter-hours", action="store_true", help="hourly prices interpolated to 15 minutes")
    parser.add_argument("--years", type=int, default=1, help="with --quarter-hours: repeat the year this many times")
    args = parser.parse_args()
    prices = CsvPriceSource(args.prices).fetch()
    if args.quarter_hours:
        prices = quarter_hours(prices, args.years)
    if not args.sweep:
        print(
            "\n".join(run(prices, args.curves, args.gpu, args.workload, args.max_throughput_loss, args.history_hours))
        )
        return 0
    pairs = sorted({(r.gpu, r.workload) for r in read_curve_rows(args.curves)})
    for gpu, workload in pairs:
        for max_loss in (0.02, 0.05, 0.10):
            print("\n".join(run(prices, args.curves, gpu, workload, max_loss, args.history_hours)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
