"""One row per GPU of a node: the job holding it and the numbers an operator scans; all of it in `GpuDetail` below."""

from __future__ import annotations

from collections.abc import Mapping

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from factoryctl.live.services import NO_JOB_STORE, GpuHistory, GpuJob, NodeHistory
from factoryctl.model.telemetry import GpuSample
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.gpu_bars import is_lost, level_style, power_level, temperature_level
from factoryctl.tui.renderables.gpu_job import job_cell
from factoryctl.tui.renderables.palette import tone
from factoryctl.tui.renderables.sparkline import Sparkline

HISTORY_WIDTH = 16

#: (key, title) of every column. Each is as wide as its widest value (a B200's `200-1000` range, `1000/1000 W`,
#: `105/180 GiB`): fixed widths cut values, and a cut number reads as a wrong one. The job holding the GPU comes
#: second, where an 80-column terminal shows it (`gpu_row`).
COLUMNS = (
    ("gpu", "GPU"),
    ("job", "Job"),
    ("util", "Util"),
    ("power", "Power/Cap"),
    ("range", "Range W"),
    ("temp", "Temp"),
    ("mem", "Memory"),
    ("throttle", "Throttled"),
    ("ecc", "ECC"),
    ("xid", "XID"),
    ("procs", "Procs"),
    ("clock", "SM MHz"),
    ("energy", "Energy kWh"),
    ("history", "Util history"),
    ("uuid", "UUID"),
)


def history_cell(history: GpuHistory | None) -> Text:
    """The GPU's recent utilization as a one-line sparkline (newest on the right)."""
    if history is None or not history.utilization_pct:
        return Text("…", style=tone("secondary"))
    row = Sparkline(history.utilization_pct, minimum=0, maximum=100).rows(HISTORY_WIDTH)[0]
    text = Text(no_wrap=True)
    for char, style in row:
        text.append(char, style=style)
    return text


def gpu_cells(gpu: GpuSample, history: GpuHistory | None = None) -> list[Text]:
    """The row of one GPU."""
    draw = "—" if gpu.power_w is None else f"{gpu.power_w:.0f}"
    power = Text(f"{draw}/{fmt.watts(gpu.power_limit_w)}")
    if gpu.power_w is not None:
        power.stylize(level_style(power_level(gpu.power_w, gpu.power_limit_w)))
    temp = Text(fmt.celsius(gpu.temperature_c))
    if gpu.temperature_c is not None:
        temp.stylize(level_style(temperature_level(gpu.temperature_c, gpu.temperature_slowdown_c)))
    low, high = gpu.power_limit_min_w, gpu.power_limit_max_w
    limits = "—" if low is None or high is None else f"{low:.0f}-{high:.0f}"
    memory = f"{(gpu.memory_used_mib or 0) / 1024:.0f}/{(gpu.memory_total_mib or 0) / 1024:.0f} GiB"
    if gpu.memory_used_mib is None:
        memory = "—"
    ecc = Text("—" if gpu.ecc_uncorrected is None else str(gpu.ecc_uncorrected))
    if gpu.ecc_uncorrected:
        ecc.stylize(tone("alarm"))
    xids = fmt.xid_events(gpu)
    xid = Text(str(xids[-1][0]), style=tone("alarm")) if xids else Text("—")
    throttle = Text(fmt.throttle_short(gpu.throttle_reasons), no_wrap=True, overflow="ellipsis")
    if "throttle_reasons" in gpu.null_reasons:  # not reported (a lost GPU): not "none"
        throttle = Text("—")
    elif gpu.throttle_reasons:
        throttle.stylize(tone("warn"))
    procs = "—" if "processes" in gpu.null_reasons else str(len(gpu.processes))
    return [
        Text(str(gpu.index), style="bold"),
        Text("lost", style=tone("alarm")) if is_lost(gpu) else Text(fmt.percent(gpu.utilization_pct)),
        power,
        Text(limits),
        temp,
        Text(memory),
        throttle,
        ecc,
        xid,
        Text(procs),
        Text("—" if gpu.sm_clock_mhz is None else f"{gpu.sm_clock_mhz:.0f}"),
        Text("—" if gpu.energy_j is None else f"{gpu.energy_j / 3.6e6:.2f}"),
        history_cell(history),
        Text(gpu.uuid or "—", style=tone("secondary")),
    ]


def gpu_row(gpu: GpuSample, job: GpuJob, history: GpuHistory | None = None) -> list[Text]:
    """The cells of one GPU in `COLUMNS` order: `gpu_cells` with the job holding it after the index."""
    index, *readings = gpu_cells(gpu, history)
    return [index, job_cell(job), *readings]


class GpuTable(DataTable[Text]):
    """GPUs of one node; the highlighted GPU drives the detail panel."""

    class GpuHighlighted(Message):
        """The cursor moved to a GPU."""

        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        self._indexes: list[int] = []

    def on_mount(self) -> None:
        """Create the columns."""
        for key, title in COLUMNS:
            self.add_column(title, key=key)  # no width: the column grows to its widest value

    def show(self, gpus: tuple[GpuSample, ...], jobs: Mapping[int, GpuJob], history: NodeHistory | None = None) -> None:
        """Show these GPUs, each with the job holding it (`jobs`, by index: one missing there is unknown).

        Cells are swapped in place when the set of GPUs is unchanged.
        """
        unknown = GpuJob(None, NO_JOB_STORE)
        rows = {
            g.index: gpu_row(g, jobs.get(g.index, unknown), history.gpu(g.index) if history else None) for g in gpus
        }
        indexes = list(rows)
        if indexes == self._indexes:
            for index, cells in rows.items():
                for (key, _), cell in zip(COLUMNS, cells, strict=True):
                    self.update_cell(str(index), key, cell, update_width=True)
            return
        row = self.cursor_row
        self.clear()
        for index, cells in rows.items():
            self.add_row(*cells, key=str(index))
        self._indexes = indexes
        if gpus:
            self.move_cursor(row=min(max(row, 0), len(gpus) - 1), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Tell the screen which GPU to detail."""
        event.stop()
        if event.row_key.value is not None:
            self.post_message(self.GpuHighlighted(int(event.row_key.value)))
