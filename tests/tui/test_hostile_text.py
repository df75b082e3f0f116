"""The dashboard's words for values a hostile node sent: a time no clock can show reads `?`, never a crash."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from factoryctl.model.telemetry import GpuSample
from factoryctl.tui.renderables.gpu_detail import GpuDetailRenderable
from factoryctl.tui.text import clock


@pytest.mark.parametrize("bad", [1e18, -1e18, math.nan, math.inf])
def test_a_time_no_clock_can_show_reads_as_a_question_mark(bad: float) -> None:
    """`time.gmtime(1e18)` raised OSError and ended `dash` (the review's finding 1)."""
    assert clock(bad) == "?"


def test_ordinary_and_unknown_times_read_as_before() -> None:
    assert clock(3600 + 23 * 60 + 45) == "01:23:45Z"
    assert clock(None) == "—"


def test_a_hostile_gpu_name_is_drawn_as_visible_escapes() -> None:
    gpu = GpuSample.from_json("n1", {"index": 0, "name": "\x1b]0;PWNED\x07\x1b[2J\rX\nY", "power_w": 5.0})
    console = Console(width=100, record=True, color_system=None, file=io.StringIO())
    console.print(GpuDetailRenderable(gpu))
    text = console.export_text()
    assert "\x1b" not in text
    assert "\\x1b]0;PWNED\\x07\\x1b[2J\\x0dX\\x0aY" in text
