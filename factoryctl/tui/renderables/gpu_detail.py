"""Every field of one GPU, in words, with its recent history: the lower half of the node screen.

Unsupported values show as `n/a (reason)` from the sample's `null_reasons`, never as an invented number. The job
holding the GPU follows its name (renderables/gpu_job.py), a lost GPU's too: that job is the one about to fail.
"""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text

from factoryctl.live.services import GpuHistory, GpuJob
from factoryctl.model.telemetry import GpuSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.gpu_bars import is_lost, level_style, temperature_level
from factoryctl.tui.renderables.gpu_job import job_words
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.renderables.sparkline import Sparkline


def _value(gpu: GpuSample, name: str, shown: str, style: str = "") -> Text:
    """`shown`, or `n/a (reason)` when the driver did not report the field (a None, or a list it names unreported)."""
    if getattr(gpu, name) is None or name in gpu.null_reasons:
        return fmt.not_reported(gpu, name)
    return Text(shown, style=style)


def _xids(gpu: GpuSample) -> Text:
    events = fmt.xid_events(gpu)
    if not events:
        return Text("none")
    shown = ", ".join(f"{code} at {fmt.clock(when)}" for code, when in events[-4:])
    return Text(shown, style=tone("alarm"))


#: What a lost GPU's detail says, once, instead of every field's `n/a (gpu_lost)`.
LOST_SENTENCE = "GPU lost (fell off the bus): its readings are unavailable"


def _identity(gpu: GpuSample, job: GpuJob | None) -> list[tuple[str, Text]]:
    """The rows that name the GPU, lost or not: index and model, UUID, and the job holding it (when told)."""
    rows = [
        ("GPU", Text(f"{gpu.index}  {gpu.name or 'unknown model'}", style="bold")),
        ("UUID", Text(gpu.uuid or "n/a")),
    ]
    return rows if job is None else [*rows, ("job", job_words(job))]


def _temperature(gpu: GpuSample) -> Text:
    """The temperature, coloured by how near it is to the slowdown temperature, which follows it."""
    shown = _value(gpu, "temperature_c", f"{fmt.celsius(gpu.temperature_c)}")
    if gpu.temperature_c is not None:
        shown.stylize(level_style(temperature_level(gpu.temperature_c, gpu.temperature_slowdown_c)))
        shown.append(f", slows down at {fmt.celsius(gpu.temperature_slowdown_c)}", style="")
    return shown


def _ecc(gpu: GpuSample) -> Text:
    """Uncorrectable ECC errors; any at all is an alarm with what to do about it."""
    shown = _value(gpu, "ecc_uncorrected", str(gpu.ecc_uncorrected))
    if gpu.ecc_uncorrected:
        shown.stylize(tone("alarm"))
        shown.append("  uncorrectable errors: drain and reset this GPU", style=tone("alarm"))
    return shown


def _processes(gpu: GpuSample) -> Text:
    """The compute processes on the GPU: pid, name and memory of each, or `none`."""
    listed = ", ".join(
        f"{p.pid}"
        + (f" {p.name}" if p.name else "")
        + (f" ({fmt.mib(p.used_memory_mib)})" if p.used_memory_mib else "")
        for p in gpu.processes
    )
    return _value(gpu, "processes", listed or "none")


def _power_rows(gpu: GpuSample) -> list[tuple[str, Text]]:
    """Power drawn against the enforced limit, the range the limit may be set in, and the energy counter."""
    power = _value(gpu, "power_w", f"{fmt.watts(gpu.power_w)} of {fmt.watts(gpu.power_limit_w)} enforced limit")
    limits = _value(
        gpu,
        "power_limit_min_w",
        f"{fmt.watts(gpu.power_limit_min_w)} – {fmt.watts(gpu.power_limit_max_w)}"
        f" (default {fmt.watts(gpu.power_limit_default_w)})",
    )
    energy = _value(gpu, "energy_j", "" if gpu.energy_j is None else f"{gpu.energy_j / 3.6e6:.3f} kWh since boot")
    return [("power", power), ("limit range", limits), ("energy", energy)]


def detail_rows(gpu: GpuSample, job: GpuJob | None = None) -> list[tuple[str, Text]]:
    """(label, value) for every GPU field of docs/cli.md ("GPU fields") and the `job` holding it (when told).

    A lost GPU's readings are one sentence.
    """
    if is_lost(gpu):
        return [*_identity(gpu, job), ("state", Text(LOST_SENTENCE, style=tone("alarm")))]
    memory = _value(gpu, "memory_used_mib", f"{fmt.mib(gpu.memory_used_mib)} of {fmt.mib(gpu.memory_total_mib)}")
    throttled = tone("warn") if gpu.throttle_reasons else ""
    rows = [
        *_identity(gpu, job),
        ("utilization", _value(gpu, "utilization_pct", fmt.percent(gpu.utilization_pct))),
        ("memory", memory),
        *_power_rows(gpu),
        ("temperature", _temperature(gpu)),
        ("SM clock", _value(gpu, "sm_clock_mhz", f"{gpu.sm_clock_mhz or 0:.0f} MHz")),
        ("throttled", _value(gpu, "throttle_reasons", fmt.throttle_words(gpu.throttle_reasons), throttled)),
        ("ECC uncorr.", _ecc(gpu)),
        ("XID events", _xids(gpu)),
        ("processes", _processes(gpu)),
    ]
    unsupported = [f"{k}: {v}" for k, v in gpu.null_reasons.items()]
    if unsupported:
        rows.append(("not reported", Text("; ".join(unsupported), style=tone("secondary"))))
    return rows


class GpuDetailRenderable:
    """One GPU's fields, the job holding it among them, beside its utilization, power and temperature history."""

    def __init__(self, gpu: GpuSample, history: GpuHistory | None = None, job: GpuJob | None = None) -> None:
        self.gpu = gpu
        self.history = history
        self.job = job

    def fields_table(self) -> Table:
        """The (label, value) grid."""
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in detail_rows(self.gpu, self.job):
            table.add_row(label, value)
        return table

    def history_group(self) -> Group:
        """Three labelled sparklines in the palette's graph colour (the power one dashes its cap); none for a lost GPU."""
        h = self.history
        gpu = self.gpu
        if is_lost(gpu):  # no cap or range to scale by: its last readings would draw as full bars
            return Group(Text("history: none while the GPU is lost", style=tone("secondary")))
        if h is None or not h.power_w:
            return Group(Text("history: collecting…", style=tone("secondary")))
        return Group(
            Text(f"utilization (last {len(h.utilization_pct)} samples)", style="bold"),
            Sparkline(h.utilization_pct, minimum=0, maximum=100),
            Text(f"power, cap {fmt.watts(gpu.power_limit_w)}", style="bold"),
            Sparkline(h.power_w, minimum=0, maximum=gpu.power_limit_max_w, ceiling=gpu.power_limit_w),
            Text(f"temperature, slowdown {fmt.celsius(gpu.temperature_slowdown_c)}", style="bold"),
            Sparkline(h.temperature_c, minimum=20, maximum=(gpu.temperature_slowdown_c or 87) + 5),
        )

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """Fields on the left, history on the right when wide enough; stacked otherwise."""
        if options.max_width >= 100:
            layout = Table.grid(padding=(0, 2), expand=True)
            layout.add_column(ratio=3)
            layout.add_column(ratio=2)
            layout.add_row(self.fields_table(), self.history_group())
            yield layout
        else:
            yield self.fields_table()
            yield self.history_group()
