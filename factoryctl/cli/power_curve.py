"""The curve `power simulate` replays on: `--curve FILE --gpu G --workload W`, else the one the policy commands use.

`power status` names the curve the live policy values limits on (`curve built-in a40 squad/bert_base`), and
`power simulate` asked for `--curve` all the same: a fresh machine had no file to give it. Without `--curve` it now
takes that curve: factory.yaml's `power.curve` (with `curve_gpu` and `curve_workload`), else the simulated driver's
built-in A40 curve, measured at 100-300 W, so its limits are in watts as a curve file's are.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from factoryctl.cli import context
from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from factoryctl.model.power import GpuPowerRange
    from factoryctl.power.curve import PowerCurve


def simulated_curve(
    ctx: typer.Context, curve: Path | None, gpu: str | None, workload: str | None
) -> tuple[PowerCurve, GpuPowerRange]:
    """The curve to replay on and its GPU's power range: `--curve` (with `--gpu`, `--workload`), else the configured one.

    `--gpu` and `--workload` name a curve in a `--curve` file: one without the other, or either without a file, is
    a usage error (exit 2). A factory.yaml whose `power.curve` cannot be used is a config error (exit 3), as for
    `power apply`; with no factory.yaml at all the built-in curve is used.
    """
    from factoryctl.power.curve_file import load_curve

    if curve is not None:
        if gpu is None or workload is None:
            raise UsageError(
                f"--curve {curve} needs --gpu and --workload: a curve file holds many GPUs and workloads.",
                "e.g. --gpu a40 --workload squad/bert_base (the names of the file's gpu and workload columns).",
            )
        return load_curve(curve, gpu, workload)
    if gpu is not None or workload is not None:
        raise UsageError(
            "--gpu and --workload name a curve in a --curve file, and no --curve was given.",
            "give --curve FILE too, or leave them out to replay on the curve `factoryctl power status` names.",
        )
    return _configured_curve(ctx) or _builtin_curve()


def _configured_curve(ctx: typer.Context) -> tuple[PowerCurve, GpuPowerRange] | None:
    """factory.yaml's `power.curve`, None when it sets none or there is no factory.yaml (none given or found)."""
    from factoryctl.config import discover
    from factoryctl.config_schema import config_dir
    from factoryctl.errors import ConfigError
    from factoryctl.power.curve_file import load_curve
    from factoryctl.power.policy_apply import from_dir

    explicit, _ = context.global_options(ctx)
    if explicit is None and not discover(explicit)[0].exists():
        return None
    config = context.load(ctx)
    power = config.settings.power
    if power.curve is None or power.curve_gpu is None or power.curve_workload is None:
        return None
    path = Path(from_dir(power.curve, config_dir(config.path))).expanduser()
    try:
        return load_curve(path, power.curve_gpu, power.curve_workload)
    except UsageError as refused:  # the file factory.yaml names: a config error, as `power apply` says it
        raise ConfigError(
            f"power.curve: {refused.message}", refused.hint or "check power.curve in factory.yaml."
        ) from None


def _builtin_curve() -> tuple[PowerCurve, GpuPowerRange]:
    """The simulated driver's A40 curve, with the A40's range in watts (its lowest measured limit to 300 W)."""
    from factoryctl.model.power import GpuPowerRange
    from factoryctl.power.curve_file import builtin_curve
    from factoryctl.sim.curve import ZEUS_A40_MAX_W

    curve = builtin_curve()
    return curve, GpuPowerRange(min_w=curve.min_frac * ZEUS_A40_MAX_W, max_w=ZEUS_A40_MAX_W, default_w=ZEUS_A40_MAX_W)
