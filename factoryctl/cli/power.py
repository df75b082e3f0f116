"""`factoryctl power ...`: grid-price power capping. This module holds the noun and `power simulate`.

`simulate` scores a policy offline on a price file and a measured throughput-vs-power curve, with the causal
visibility of a real market, before any node is touched. Verbs that act on nodes (`set`, `reset`, ...) live in
their own modules and register on this app (see `VERB_MODULES` in app.py). Heavy imports stay inside commands.
"""

from __future__ import annotations

import itertools
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context, power_report
from factoryctl.cli.arguments import exact_path
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION, checked_choice
from factoryctl.cli.price import PRICES_OPTION
from factoryctl.cli.render import OutputFormat, dump_json
from factoryctl.errors import UsageError
from factoryctl.power.policy_file import POLICY_HINT as POLICY_HINT  # where callers and tests find them
from factoryctl.power.policy_file import parse_policy_file as parse_policy_file

if TYPE_CHECKING:
    from factoryctl.cli.outfile import OutFile
    from factoryctl.model.power import GpuPowerRange
    from factoryctl.power.policy.config import Policy
    from factoryctl.power.simulator import SimulationResult

app = typer.Typer(no_args_is_help=True)


class Visibility(str, Enum):
    """When prices become known to the policy (see docs/power.md)."""

    day_ahead = "day-ahead"
    realtime = "realtime"


#: Two limits closer than this (fractions of the largest limit) are the same limit (as FRAC_EPSILON in power.curve).
SAME_LIMIT = 1e-9
#: Decimal places of the reported percentages: far finer than any price or curve, far coarser than float noise, so
#: a loss of exactly D reads `5.0` (not 5.000000000000194) and `within_loss_budget` agrees with the number shown.
PCT_DECIMALS = 9
#: What the costs count, shown beside them in the table (JSON keeps bare numbers; docs/power.md defines both).
COST_UNIT = "in the prices' currency, per MW of GPUs"
_LOSS_HINT = "give D as a fraction: --max-throughput-loss 0.05 allows a 5 % loss of throughput."


def _visibility(value: object) -> Visibility:
    """`--price-visibility` as a Visibility; anything else is our usage error naming the value, with a did-you-mean."""
    if isinstance(value, Visibility):
        return value
    return Visibility(checked_choice(str(value), [v.value for v in Visibility], "price visibility"))


def _loss_fraction(value: object) -> float:
    """`--max-throughput-loss` as a float; text that is not a number is our usage error naming it (`5%` ...).

    `0_05` and full-width digits (`０.05`), which `float` reads, are refused as in the data files (docs/power.md).
    """
    if isinstance(value, float):
        return value
    text = str(value).strip()
    try:
        if "_" in text or not text.isascii():
            raise ValueError(text)
        return float(text)
    except ValueError:
        raise UsageError(f"--max-throughput-loss must be a fraction such as 0.05, not {text!r}.", _LOSS_HINT) from None


def _load_policy(path: Path | None, gpu: GpuPowerRange, max_loss: float | None) -> tuple[Policy, float]:
    """The policy to replay and D, the loss budget of the blind and bound references.

    D comes from `--max-throughput-loss` or from an optimize policy's `max_throughput_loss`; given in both places
    they must agree (parse_optimize refuses a difference). A tiers policy has no D of its own, so it needs the option.
    """
    from factoryctl.power.policy.config import OptimizePolicy, check_loss_budget

    if max_loss is not None:
        check_loss_budget(max_loss)
    if path is None:
        if max_loss is None:
            raise UsageError(
                "power simulate needs --max-throughput-loss, or a --policy file that sets max_throughput_loss.",
                hint="--max-throughput-loss 0.05 allows a 5 % loss of throughput.",
            )
        return OptimizePolicy(max_throughput_loss=max_loss), max_loss
    policy = parse_policy_file(path, gpu, max_loss)
    if max_loss is not None:
        return policy, max_loss
    if isinstance(policy, OptimizePolicy):
        return policy, policy.max_throughput_loss
    raise UsageError(
        f"{path}: a tiers policy sets no max_throughput_loss, and the blind and bound references need one.",
        hint="pass --max-throughput-loss, e.g. 0.05 for a 5 % loss of throughput.",
    )


def _facts(curve_name: str, visibility: Visibility, max_loss: float) -> dict[str, Any]:
    """What the replay was asked (the curve's GPU and workload, the price visibility, D), as the document names it."""
    gpu_name, _, workload_name = curve_name.removeprefix("built-in ").partition(" ")
    return {
        "gpu": gpu_name,
        "workload": workload_name,
        "price_visibility": visibility.value,
        "max_throughput_loss": max_loss,
    }


def _document(result: SimulationResult, policy: Policy, facts: dict[str, Any]) -> dict[str, Any]:
    from factoryctl.model.power import iso_utc_seconds

    actions = result.actions
    score = result.score
    changes = sum(
        1 for a, b in itertools.pairwise(actions) if abs(a.power_limit_frac - b.power_limit_frac) > SAME_LIMIT
    )
    loss = _reported_pct(score.throughput_loss_pct)
    budget = _reported_pct(100.0 * float(facts["max_throughput_loss"]))
    return {
        "schema_version": 1,
        **facts,
        "policy": policy.kind,
        "intervals": len(actions),
        "interval_s": result.series.interval_s,
        "start": iso_utc_seconds(actions[0].timestamp_s),
        "end": iso_utc_seconds(actions[-1].timestamp_s),
        "nan_prices": result.series.nan_prices,
        "missing_intervals": result.series.missing_intervals,
        "baseline_cost": score.baseline_cost,
        "cost": score.cost,
        "saving_pct": _reported_saving(score.saving_pct),
        "throughput_loss_pct": loss,
        "within_loss_budget": loss <= budget,
        "blind_saving_pct": _reported_saving(result.blind_saving_pct),
        "bound_saving_pct": _reported_saving(result.bound_saving_pct),
        "gap_closed_frac": result.gap_fraction,
        "limit_changes": changes,
        "stale_intervals": sum(1 for a in actions if a.reason == "failsafe"),
        "no_reference_intervals": result.no_reference_intervals,
        "budget_guard_intervals": sum(1 for a in actions if a.reason == "budget"),
        "clamped_intervals": sum(1 for a in actions if a.clamped),
        "mean_power_limit_frac": _time_weighted_mean([a.power_limit_frac for a in actions], result),
    }


def _reported_pct(value: float) -> float:
    """A percentage to PCT_DECIMALS places, never -0.0."""
    return round(value, PCT_DECIMALS) + 0.0


def _reported_saving(value: float | None) -> float | None:
    """A saving percentage as reported; None (no saving can be said) stays None."""
    return None if value is None else _reported_pct(value)


def _time_weighted_mean(values: list[float], result: SimulationResult) -> float:
    """The mean of one value per price row, each weighted by how long its row lasts (hourly and 15-minute alike)."""
    hours = result.series.hours(len(values))
    return sum(v * h for v, h in zip(values, hours, strict=True)) / sum(hours)


def _render(document: dict[str, Any], output: OutputFormat) -> str:
    from factoryctl.cli.render import dump_yaml, format_cell
    from factoryctl.model.telemetry import escape_controls

    if output is OutputFormat.json:
        return dump_json(document)
    if output is OutputFormat.yaml:
        return dump_yaml(document)

    def cell(value: object) -> str:  # the curve file's names escaped, as in every table (render_table)
        return f"{value:.6g}" if isinstance(value, float) else escape_controls(format_cell(value))

    # money to the cent (never 1.75e+06 or -0.00), and what it counts
    def shown(key: str, value: Any) -> str:  # noqa: ANN401 - any value of the document; the cost keys' are floats
        return f"{round(value, 2) + 0.0:.2f} ({COST_UNIT})" if key in ("baseline_cost", "cost") else cell(value)

    width = max(len(key) for key in document)
    return "".join(f"{key.ljust(width)}   {shown(key, value)}\n" for key, value in document.items())


def _open_schedule(path: Path, prices: Path | None, curve: Path | None, policy_file: Path | None) -> OutFile:
    """--schedule-out opened before the replay, so a bad path fails at once; writing over an input is refused."""
    inputs = {"--prices": prices, "--curve": curve, "--policy": policy_file}
    refusals = [
        (given, f"--schedule-out {path} is the {option} file itself; writing it would destroy that file.")
        for option, given in inputs.items()
    ]
    from factoryctl.cli.outfile import open_out_file  # tempfile and friends: not at --help

    return open_out_file(path, "--schedule-out", f"the schedule to {path}", refusals)


def _note_no_saving(document: dict[str, Any], quiet: bool) -> None:
    """Say on stderr why `saving_pct` is null: no price is known, or the baseline is too near zero for a percentage.

    A note, so not under -q (docs/cli.md): the results say it already (`saving_pct` null, the two costs).
    """
    from factoryctl.power.simulator import NEAR_ZERO_BASELINE

    if document["saving_pct"] is not None or quiet:
        return
    if document["nan_prices"] >= document["intervals"]:
        sys.stderr.write(
            f"factoryctl: note: no interval has a known price (all {document['intervals']} are empty or NaN), so there"
            " is no bill to save on and saving_pct is null.\n"
        )
    else:
        sys.stderr.write(
            f"factoryctl: note: the baseline bill is 0 or under {NEAR_ZERO_BASELINE:.0%} of the prices' gross sum"
            " (they nearly cancel out), so saving_pct is null: compare cost with baseline_cost.\n"
        )


def _warn_stale(document: dict[str, Any], policy: Policy, policy_file: Path | None) -> None:
    """Say on stderr when most intervals ran at the fail-safe limit, and why; the results stay as they are.

    The usual cause is `stale_after_minutes` shorter than the price interval: in realtime the newest known price is
    always one interval old, so every interval is stale and the policy silently becomes its fail-safe. A file of one
    row in realtime is stale throughout too: its only interval is the first, before which no price is published.
    A warning (the results are not what the policy would do), so it is said under -q too (docs/cli.md).
    """
    stale, intervals = document["stale_intervals"], document["intervals"]
    if 2 * stale <= intervals:
        return
    after_min, interval_min = policy.rules.stale_after_s / 60, document["interval_s"] / 60
    setting = f"in {policy_file}" if policy_file is not None else "by default"
    head = f"factoryctl: {stale} of {intervals} intervals were stale, so the policy ran at its fail-safe limit there"
    if document["price_visibility"] == "realtime" and intervals == 1:
        sys.stderr.write(
            f"{head}: the file has one row, and in realtime no price is published before an interval starts, so the"
            " first interval never has a known price.\n"
            "hint: give the prices of the intervals before it too, or use --price-visibility day-ahead.\n"
        )
        return
    if document["price_visibility"] == "realtime" and policy.rules.stale_after_s < document["interval_s"]:
        sys.stderr.write(
            f"{head}: stale_after_minutes is {after_min:g} {setting}, shorter than the prices' {interval_min:g}-minute"
            " interval, and in realtime the newest known price is always one interval old.\n"
            f"hint: set stale_after_minutes above {interval_min:g} in the policy file (the default is 120).\n"
        )
        return
    sys.stderr.write(
        f"{head}: their prices were unknown, or missing for longer than stale_after_minutes ({after_min:g}"
        f" {setting}).\nhint: check the prices file for empty or NaN prices and gaps (nan_prices,"
        " missing_intervals).\n"
    )


def _warn_no_reference(document: dict[str, Any], policy: Policy, policy_file: Path | None) -> None:
    """Say on stderr how many intervals `optimize` ran at full power for want of any price to value throughput on.

    Its reference sample (the known prices of the last `history_hours`, and those published ahead) was empty there,
    which a `history_hours` shorter than a gap or a run of unknown prices causes (hourly rows in a file whose usual
    interval is 15 minutes are such gaps). Nothing else in the results shows it. A warning, so said under -q too.
    """
    from factoryctl.power.policy.config import OptimizePolicy
    from factoryctl.textfile import exact_number

    count = document["no_reference_intervals"]
    if not count or not isinstance(policy, OptimizePolicy):
        return
    setting = f"in {policy_file}" if policy_file is not None else "by default"
    sys.stderr.write(
        f"factoryctl: warning: {count:,} of {document['intervals']:,} intervals had no known price in the"
        f" history_hours before them ({exact_number(policy.history_s / 3600)} {setting}), so optimize could not value"
        " throughput there and asked for full power; give history_hours longer than the longest gap between known"
        " prices in the file.\n"
    )


#: The options of `power simulate` beyond the price file and the output (kept here: the command stays short).
CURVE_OPTION: Any = typer.Option(
    None,
    "--curve",
    path_type=str,
    readable=False,  # reading is ours: an unreadable file is said as any other file error (not Click's words)
    callback=exact_path(),
    help="Power-curve CSV: gpu,workload,pl_frac,throughput_rel,power_rel (default: the curve `power status` names:"
    " factory.yaml's power.curve, else the built-in a40 squad/bert_base).",
)
MAX_LOSS_OPTION: Any = typer.Option(
    None,
    "--max-throughput-loss",
    parser=_loss_fraction,
    help="D: largest mean throughput loss, a fraction (0.05 = 5 %); optional when --policy sets it.",
)
VISIBILITY_OPTION: Any = typer.Option(
    ...,
    "--price-visibility",
    parser=_visibility,
    help="day-ahead (day d+1 known from 12:00 UTC on day d) or realtime.",
)
POLICY_FILE_OPTION: Any = typer.Option(
    None,
    "--policy",
    path_type=str,
    readable=False,  # reading is ours: an unreadable file is said as any other file error (not Click's words)
    callback=exact_path(),
    help="Policy file (YAML/JSON); default optimize.",
)


def _complete_gpu(ctx: typer.Context, incomplete: str) -> list[str]:
    """`--gpu` candidates: the GPUs of the --curve file given before it, as the file writes them."""
    from factoryctl.cli.completion import complete_names, data_file_rows

    return complete_names((row.get("gpu") or "" for row in data_file_rows(ctx.params.get("curve"))), incomplete)


def _complete_workload(ctx: typer.Context, incomplete: str) -> list[str]:
    """`--workload` candidates: the --curve file's workloads of the --gpu given before it (of every GPU without)."""
    from factoryctl.cli.completion import complete_names, data_file_rows

    rows = data_file_rows(ctx.params.get("curve"))
    gpu = str(ctx.params.get("gpu") or "").strip().lower()
    of_gpu = [row for row in rows if (row.get("gpu") or "").strip().lower() == gpu]
    return complete_names((row.get("workload") or "" for row in of_gpu or rows), incomplete)


GPU_OPTION: Any = typer.Option(
    None, "--gpu", help="GPU name in the --curve file (any case, e.g. a40).", autocompletion=_complete_gpu
)
WORKLOAD_OPTION: Any = typer.Option(
    None,
    "--workload",
    help="Workload in the --curve file (e.g. squad/bert_base or squad).",
    autocompletion=_complete_workload,
)
SCHEDULE_OUT_OPTION: Any = typer.Option(
    None,
    "--schedule-out",
    path_type=str,
    readable=False,  # an output: it need not be readable (Click checked that of an existing one)
    callback=exact_path("stdout"),
    help="Write timestamp_utc,price_per_mwh,power_limit_frac, one row per price row (-: stdout; the results go"
    " to stderr).",
)


@app.command("simulate", short_help="Replay a power policy over a price file and score it.")
def simulate_command(
    ctx: typer.Context,
    prices: Path | None = PRICES_OPTION,
    curve: Path | None = CURVE_OPTION,
    gpu: str | None = GPU_OPTION,
    workload: str | None = WORKLOAD_OPTION,
    max_throughput_loss: float | None = MAX_LOSS_OPTION,
    price_visibility: Visibility = VISIBILITY_OPTION,
    policy_file: Path | None = POLICY_FILE_OPTION,
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
    schedule_out: Path | None = SCHEDULE_OUT_OPTION,
) -> None:
    """Replay a power policy causally over a price file and score it against blind and clairvoyant references."""
    from functools import partial

    from factoryctl.cli.outfile import emit_then_write, removed_on_failure
    from factoryctl.cli.power_curve import simulated_curve
    from factoryctl.cli.price import open_prices, refuse_empty_source
    from factoryctl.cli.progress import replay_progress
    from factoryctl.power.schedule_file import schedule_csv
    from factoryctl.power.simulator import simulate
    from factoryctl.power.sources import market_offset_s

    power_curve, gpu_range = simulated_curve(ctx, curve, gpu, workload)
    policy, max_loss = _load_policy(policy_file, gpu_range, max_throughput_loss)
    source, where, prices_file = open_prices(ctx, prices)
    points = source.fetch()
    if not points:  # a plugin's feed gave nothing: named as `price show` names it, not "the series is empty"
        refuse_empty_source(where, "to simulate over")
    opener = None if schedule_out is None else partial(_open_schedule, schedule_out, prices_file, curve, policy_file)
    with removed_on_failure(opener) as out:  # to the end: a stop while the results are written keeps no temp file
        offset = market_offset_s(source)  # the market's clock, on which its intervals start
        quiet = context.global_options(ctx)[1]
        where = "the policy" if policy_file is None else str(policy_file)
        with replay_progress(f"replaying {policy.kind}", quiet, unit="intervals") as progress:
            result = simulate(
                points, power_curve, gpu_range, policy, price_visibility.value, max_loss, offset, progress, where
            )
        document = _document(result, policy, _facts(power_curve.name, price_visibility, max_loss))
        _warn_stale(document, policy, policy_file)
        _warn_no_reference(document, policy, policy_file)
        _note_no_saving(document, quiet)
        emit_then_write(out, lambda: _render(document, output), lambda: schedule_csv(points, result.actions))


# `report` reads the store as `simulate` reads files, touching no node: it follows `simulate` in the noun's help.
power_report.register(app)
