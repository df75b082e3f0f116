"""`gpus -o json` for what the driver did not report: null (not an invented empty list), and ISO-8601 XID times."""

from __future__ import annotations

from pathlib import Path

from factoryctl.model.telemetry import GpuSample, XidEvent
from factoryctl.tui.renderables.gpu_detail import detail_rows

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"


def test_a_lost_gpu_lists_no_throttle_reasons_or_processes_it_cannot_know(cli, tmp_path: Path) -> None:
    """They were [] ("none") while null_reasons said gpu_lost (the dashboard showed "throttled none", "Procs 0")."""
    factory = tmp_path / "factory.yaml"
    factory.write_text(FACTORY)
    assert cli("--config", str(factory), "sim", "inject", "n1/1", "--lost").exit_code == 0
    items = cli("--config", str(factory), "gpus", "n1", "-o", "json").json()["items"]
    lost, fine = items[1], items[0]
    assert lost["null_reasons"]["processes"] == "gpu_lost"
    assert lost["throttle_reasons"] is None
    assert lost["processes"] is None
    assert isinstance(fine["throttle_reasons"], list)
    assert isinstance(fine["processes"], list)
    header, row = cli("--config", str(factory), "gpus", "n1/1", "-o", "wide").stdout.splitlines()
    procs = header.index("PROCS")
    assert row[procs:].split()[0] == "-"  # not 0
    assert row[header.index("NAME") :].startswith("(GPU lost)")  # the row said only "-" everywhere


def test_xid_times_are_iso_8601_utc() -> None:
    gpu = GpuSample("n1", 0, xid_events=(XidEvent(43, 1795343100.7841787), XidEvent(13, None)))
    assert gpu.as_json()["xid_events"] == [{"xid": 43, "time": "2026-11-22T10:25:00.784Z"}, {"xid": 13, "time": None}]


def test_the_dashboard_shows_unreported_lists_as_not_available() -> None:
    unread = GpuSample("n1", 1, null_reasons={"throttle_reasons": "timeout", "processes": "timeout",
                                              "power_limit_min_w": "not supported"})  # fmt: skip
    rows = {label: text.plain for label, text in detail_rows(unread)}
    assert rows["throttled"] == "n/a (timeout)"
    assert rows["processes"] == "n/a (timeout)"
    assert rows["limit range"] == "n/a (not supported)"


def test_the_dashboard_says_a_lost_gpu_is_lost_once() -> None:
    lost = GpuSample("n1", 1, null_reasons={"throttle_reasons": "gpu_lost", "processes": "gpu_lost"})
    rows = {label: text.plain for label, text in detail_rows(lost)}
    assert rows["state"] == "GPU lost (fell off the bus): its readings are unavailable"
    assert "throttled" not in rows


def test_a_lost_gpu_whose_name_the_store_kept_is_still_said_lost() -> None:
    """Answered from a controller's store, a lost GPU keeps its name, and the table showed it as a plain GPU of
    dashes (`NVIDIA H100 80GB HBM3  -  -  -`); without a controller it said `(GPU lost)`."""
    from factoryctl.cli.gpus import table_view

    kept = GpuSample("n1", 3, name="NVIDIA H100 80GB HBM3", null_reasons={"power_w": "gpu_lost"})
    assert table_view(kept.as_json())["name"] == "(GPU lost) NVIDIA H100 80GB HBM3"
    unnamed = GpuSample("n1", 3, null_reasons={"power_w": "gpu_lost"})
    assert table_view(unnamed.as_json())["name"] == "(GPU lost)"
    assert table_view(GpuSample("n1", 0, name="NVIDIA H100 80GB HBM3").as_json())["name"] == "NVIDIA H100 80GB HBM3"
