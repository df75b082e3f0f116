"""The dashboard's drawing, rendered to plain text and styles by Rich alone (no App)."""

from __future__ import annotations

import dataclasses
import io

from factory_data import fixed_history, fixed_snapshot, gpu
from rich.console import Console

from factoryctl.live.services import DashboardEvent, JobLine, PriceNow
from factoryctl.model.sparkline import column_maxima
from factoryctl.model.telemetry import GpuProcess, GpuSample, NodeSample
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable, budget_gauge
from factoryctl.tui.renderables.feed_lists import EventsRenderable, JobsRenderable
from factoryctl.tui.renderables.gpu_bars import block, power_level, temperature_level
from factoryctl.tui.renderables.gpu_detail import GpuDetailRenderable
from factoryctl.tui.renderables.sparkline import Sparkline
from factoryctl.tui.text import throttle_words
from factoryctl.tui.view import summarize


def render(renderable: object, width: int = 80) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_block_heights() -> None:
    assert block(0.0) == "▁"
    assert block(1.0) == "█"
    assert block(0.5) == "▄"
    assert block(-3) == "▁"
    assert block(7) == "█"


def test_thresholds() -> None:
    assert power_level(300, 700) == "ok"
    assert power_level(600, 700) == "warn"
    assert power_level(699, 700) == "hot"
    assert power_level(300, None) == "ok"
    assert temperature_level(60, 87) == "ok"
    assert temperature_level(75, 87) == "warn"
    assert temperature_level(83, 87) == "hot"
    assert temperature_level(83, None) == "hot"


def bar_pieces(*gpus: GpuSample) -> dict[str, list[tuple[str, str]]]:
    """The node table's util, power and temp cells for one up node of `gpus`, bars only (the total dropped)."""
    from factoryctl.tui.renderables.node_rows import cell_pieces
    from factoryctl.tui.view import NodeRow

    cells = cell_pieces(NodeRow(NodeSample(node="demo01", time=0.0, gpus=gpus), "a", drained=False))
    return {key: cells[key][:-1] for key in ("util", "power", "temp")}


def test_the_table_draws_one_bar_per_gpu_with_gaps_for_missing_values() -> None:
    util = bar_pieces(gpu(1, 0, utilization_pct=0.0), gpu(1, 1, utilization_pct=100.0), gpu(1, 2, utilization_pct=None))
    assert util["util"] == [("▁", ""), ("█", "green"), ("·", "")]  # idle: text colour, never bright black
    assert bar_pieces(gpu(1, 0, temperature_c=90.0))["temp"] == [("▓", "bold red")]  # hot: gpu_bars.HOT_BAR
    assert bar_pieces(gpu(1, 0, temperature_c=None))["temp"] == [("·", "")]
    capped = gpu(1, 0, power_w=449.0, power_limit_w=450.0)
    assert bar_pieces(capped)["power"] == [("▓", "bold red")]
    assert bar_pieces(gpu(1, 0, power_w=None))["power"] == [("·", "")]


def test_power_bars_scale_to_the_max_limit_when_no_limit_is_known() -> None:
    half = gpu(1, 0, power_w=350.0, power_limit_w=None, power_limit_max_w=700.0)
    assert bar_pieces(half)["power"] == [("▄", "green")]
    assert bar_pieces(gpu(1, 0, power_w=350.0, power_limit_w=None, power_limit_max_w=None))["power"] == [("·", "")]


def test_temperature_bars_run_from_25_c_to_5_c_past_slowdown() -> None:
    assert bar_pieces(gpu(1, 0, temperature_c=20.0, temperature_slowdown_c=87.0))["temp"] == [("▁", "green")]
    assert bar_pieces(gpu(1, 0, temperature_c=58.5, temperature_slowdown_c=87.0))["temp"] == [("▄", "green")]


def test_sparkline_buckets_keep_spikes_and_right_align() -> None:
    assert column_maxima([1.0, 2.0], 4) == [None, None, 1.0, 2.0]
    assert column_maxima([0, 0, 9, 0, 0, 0], 3) == [0, 9, 0]
    rows = Sparkline([0.0, 50.0, 100.0], height=2, minimum=0, maximum=100).rows(3)
    assert "".join(c for c, _ in rows[1]) == "▁██"
    assert "".join(c for c, _ in rows[0]) == "  █"
    over = Sparkline([10.0, 90.0], minimum=0, maximum=100, ceiling=50).rows(2)
    assert [s for _, s in over[0]] == ["cyan", "bold red"]
    assert render(Sparkline([1.0, None, 3.0]), width=3).strip() == "▁·█"


def test_header_fits_80_columns_and_says_what_is_missing() -> None:
    snap = fixed_snapshot(jobs=None, jobs_running=None, queue_length=None)  # no store: no queue to count
    text = render(FactorySummaryRenderable(summarize(snap), now=snap.time))
    lines = text.splitlines()
    assert len(lines) == 3
    assert all(len(line) <= 80 for line in lines)
    assert "demo · 8 nodes │ 1 down · 1 degraded · 3 unhealthy │ 6 up · 1 drained" in lines[0]
    assert "GPUs" in lines[1]
    assert "busy" in lines[1]
    assert "of 40 kW budget" in lines[1]
    assert "11:06:40Z" in lines[1]
    assert "price n/a" in lines[2]
    assert "queue n/a" in lines[2]
    assert "kWh/h" in lines[2]
    assert "…" not in text


def test_header_with_price_cost_and_queue() -> None:
    snap = fixed_snapshot(price=PriceNow(81.5, "EUR", trend=-4.0), cost_per_hour=2.31, queue_length=7)
    text = render(FactorySummaryRenderable(summarize(snap), now=snap.time + 30))
    assert "81.50 EUR/MWh ↓" in text
    assert "2.31/h" in text
    assert "queue 7" in text
    assert "data 30 s old" in text
    assert "11:06:40Z" not in text


def test_problems_and_stale_data_survive_80_columns() -> None:
    """Down, unhealthy and `data N s old` lead their lines; zero counts are left out so nothing important crops."""
    summary = summarize(fixed_snapshot(budget_kw=40.0))
    busy = dataclasses.replace(summary, up=0, degraded=0, down=1, connecting=6, unhealthy=1, nodes=8, drained=1)
    lines = render(FactorySummaryRenderable(busy, now=summary.last_sample + 12)).splitlines()  # type: ignore[operator]
    assert lines[0].rstrip() == "demo · 8 nodes │ 1 down · 1 unhealthy │ 0 up · 6 connecting · 1 drained"
    assert lines[1].startswith("data 12 s old │ GPUs")
    assert "budget" in lines[1]
    assert all(len(line) <= 80 for line in lines)
    nothing_yet = dataclasses.replace(busy, power_kw=None, last_sample=None)
    assert "power — of 40 kW budget │ —" in render(FactorySummaryRenderable(nothing_yet, now=0.0)).splitlines()[1]
    calm = dataclasses.replace(summary, up=1, degraded=0, down=0, unhealthy=0, drained=0, nodes=1)
    assert render(FactorySummaryRenderable(calm, now=summary.last_sample)).splitlines()[0].rstrip() == (
        "demo · 1 node │ 1 up"
    )


def test_header_says_when_the_prices_file_is_bad() -> None:
    snap = fixed_snapshot(price_error="prices.csv line 2: 'x' is not a timestamp.")
    lines = render(FactorySummaryRenderable(summarize(snap), now=snap.time)).splitlines()
    assert "price n/a (error)" in lines[2]
    assert "queue 2" in lines[2]  # the rest of the line still fits 80 columns
    assert "price n/a │" in render(FactorySummaryRenderable(summarize(fixed_snapshot()), now=snap.time))


def test_header_before_the_first_snapshot() -> None:
    assert "connecting" in render(FactorySummaryRenderable(None, "lab"))


def test_header_counts_nodes_still_connecting_only_when_there_are_some() -> None:
    from factoryctl.tui.view import summarize

    summary = summarize(fixed_snapshot())
    assert "connecting" not in render(FactorySummaryRenderable(summary))
    assert "· 2 connecting" in render(FactorySummaryRenderable(dataclasses.replace(summary, connecting=2)))


def test_budget_gauge() -> None:
    assert budget_gauge(20, 40).plain == "█████░░░░░"
    assert budget_gauge(50, 40).plain == "██████████"


def test_throttle_reasons_in_words() -> None:
    assert throttle_words(()) == "none"
    assert (
        throttle_words(("sw_power_cap", "SwThermalSlowdown"))
        == "held at its power cap, slowed by the driver to cool down"
    )
    assert throttle_words(["clocksEventReasonGpuIdle"]) == "idle"
    assert throttle_words(["some_new_reason"]) == "some new reason"


def test_gpu_detail_shows_every_field_in_words() -> None:
    g = dataclasses.replace(
        gpu(7, 2, ecc_uncorrected=2, throttle_reasons=("sw_power_cap",)),
        processes=(GpuProcess(4242, 1024.0, "train.py"),),
        power_w=None,
        null_reasons={"power_w": "not supported"},
    )
    text = render(GpuDetailRenderable(g, fixed_history("demo07").gpu(2)), width=120)
    for expected in (
        g.uuid,
        "NVIDIA H100",
        "n/a (not supported)",
        "200 W – 700 W (default 700 W)",
        "held at its power cap",
        "uncorrectable",
        "4242 train.py (1.0 GiB)",
        "slows down at 87°C",
        "utilization (last 90 samples)",
        "not reported",
    ):
        assert expected in text, expected


def test_gpu_detail_stacks_when_narrow_and_waits_for_history() -> None:
    text = render(GpuDetailRenderable(gpu(1, 0), None), width=60)
    assert "history: collecting" in text
    assert "UUID" in text


def test_events_newest_first_and_per_node() -> None:
    events = fixed_snapshot().events
    lines = render(EventsRenderable(events)).splitlines()
    assert "demo05" in lines[0]
    assert "demo03" in lines[-1]
    assert "demo07" in render(EventsRenderable(events, node="demo07"))
    assert "demo05" not in render(EventsRenderable(events, node="demo07"))
    assert "no events yet" in render(EventsRenderable((DashboardEvent(0, "x", "k", "m"),), node="y"))


def test_jobs_panel_says_when_no_scheduler_feeds_it() -> None:
    assert "no scheduler data" in render(JobsRenderable(None))
    assert "no jobs" in render(JobsRenderable(()))
    jobs = (JobLine("j2", "eval", "PENDING", 8), JobLine("j1", "train", "RUNNING", 16, ("demo01", "demo02")))
    lines = render(JobsRenderable(jobs)).splitlines()
    assert lines[0].startswith("RUNNING")
    assert "demo[01-02]" in lines[0]


def test_a_drained_and_unhealthy_node_shows_the_alarm_in_80_columns() -> None:
    """The unhealthy flag comes first, so the 9-wide Flags column never crops it to `drained …`."""
    from factoryctl.tui.renderables.node_rows import NodeRowsRenderable, flag_pieces
    from factoryctl.tui.view import node_rows

    snapshot = fixed_snapshot(drained=frozenset({"demo07"}))  # demo07: ECC errors, unhealthy
    line = next(x for x in render(NodeRowsRenderable(node_rows(snapshot)), width=80).splitlines() if "demo07" in x)
    assert line.split()[-3:] == ["unhlth", "dr", "b"]
    assert "…" not in line
    assert "".join(t for t, _ in flag_pieces(True, False, True)) == "unhlth dr"
    assert "".join(t for t, _ in flag_pieces(False, False, True)) == "unhealthy"
    assert "".join(t for t, _ in flag_pieces(True, True, True)) == "drained"
    assert flag_pieces(False, True, True) == []


def test_the_sorted_rack_column_shows_its_arrow() -> None:
    from factoryctl.tui.renderables.node_rows import NodeRowsRenderable
    from factoryctl.tui.view import node_rows

    header = render(NodeRowsRenderable(node_rows(fixed_snapshot()), "rack"), width=80).splitlines()[0]
    assert header.rstrip().endswith("Ra ▲")
    assert "…" not in header
    assert "Power kW ▲" in render(NodeRowsRenderable(node_rows(fixed_snapshot()), "power"), width=80)


def test_node_rows_render_every_column_within_the_line_width() -> None:
    from factoryctl.tui.renderables.node_rows import NodeRowsRenderable, column_at, line_width, widths_for
    from factoryctl.tui.view import node_rows

    rows = node_rows(fixed_snapshot())
    text = render(NodeRowsRenderable(rows, "power", reverse=True), width=120)
    lines = text.splitlines()
    columns = widths_for(rows)
    assert line_width(columns) == 79
    assert all(len(line.rstrip()) <= 79 for line in lines)
    assert lines[0].split() == ["Node", "State", "Util", "Power", "kW", "▼", "Temp", "°C", "Flags", "Rack"]
    down = next(line for line in lines if line.startswith(" demo05"))
    assert down.split() == ["demo05", "down", "timeout", "unhealthy", "b"]
    drained = next(line for line in lines if line.startswith(" demo03"))
    assert "drained" in drained
    assert drained.split()[-1] == "a"
    assert column_at(columns, 0) == "node"
    assert column_at(columns, 78) == "rack"
    assert column_at(columns, 200) is None


def test_long_node_names_widen_the_first_column_and_crop_with_an_ellipsis() -> None:
    from factoryctl.tui.renderables.node_rows import NodeRowsRenderable
    from factoryctl.tui.view import NodeRow

    sample = dataclasses.replace(fixed_snapshot().nodes[0], node="a-very-long-node-name-in-rack-17")
    rows = [NodeRow(sample, "r17", drained=True)]
    assert "a-very-long-node-name-in-rack-17" in render(NodeRowsRenderable(rows), width=140)  # room: all of it
    assert "a-very…ack-17" in render(NodeRowsRenderable(rows), width=80)  # a lone name too long loses its middle


def test_xid_events_show_when_the_sample_carries_them() -> None:
    from factoryctl.model.telemetry import XidEvent
    from factoryctl.tui.text import xid_events

    base = gpu(1, 0)
    assert xid_events(base) == []
    with_xids = dataclasses.replace(base, xid_events=(XidEvent(79, 1_795_000_000.0),))
    assert xid_events(with_xids) == [(79, 1_795_000_000.0)]
    assert "79 at 11:06:40Z" in render(GpuDetailRenderable(with_xids), width=120)
    assert "XID events  none" in render(GpuDetailRenderable(base), width=120)


def test_header_price_without_a_currency() -> None:
    snap = fixed_snapshot(price=PriceNow(81.5, "", trend=0.0), cost_per_hour=1.5)
    text = render(FactorySummaryRenderable(summarize(snap), now=snap.time))
    assert "price 81.50/MWh →" in text
    assert "cost 1.50/h" in text


def test_the_unhealthy_flag_and_the_header_count_follow_one_definition() -> None:
    """A down, a degraded (erroring) and an ECC node: each flagged in its row, and the header counts those three."""
    from factoryctl.tui.renderables.node_rows import cell_pieces
    from factoryctl.tui.view import node_rows

    snap = fixed_snapshot()
    flagged = [r.name for r in node_rows(snap) if any("unh" in text for text, _ in cell_pieces(r)["flags"])]
    assert flagged == ["demo05", "demo06", "demo07"]
    assert summarize(snap).unhealthy == len(flagged)


def test_event_lines_name_their_node_once() -> None:
    events = [
        DashboardEvent(1_795_000_000.0, "demo01", "drain", "demo01 drained by root: fan swap"),
        DashboardEvent(1_795_000_001.0, "demo01", "node_down", "down: demo01: the agent exited.", "error"),
        DashboardEvent(1_795_000_002.0, "demo02", "node_up", "answers again"),
        DashboardEvent(1_795_000_003.0, None, "source", "demo01 is named, but this line has no node"),
    ]
    lines = render(EventsRenderable(events), width=120).splitlines()
    assert lines[0].endswith("demo01 is named, but this line has no node")
    assert lines[1].endswith(" demo02 answers again")
    assert lines[2].endswith(" demo01 down: the agent exited.")
    assert lines[3].endswith(" demo01 drained by root: fan swap")
    skew = DashboardEvent(1_795_000_004.0, "late1", "clock_skew", "late1's clock is 120 s ahead of the controller's")
    assert (
        render(EventsRenderable([skew]), width=120)
        .splitlines()[0]
        .endswith(" late1 clock is 120 s ahead of the controller's")
    )
