"""A late controller is named in the header, with the age of its data however young.

The controller holds the store's lock but stores nothing (overloaded, `kill -STOP`): the events panel said so, but
below 34 lines it folds away and the header read like any quiet factory. `FactorySummary.late_controller` (from the
snapshot's `late_controller`) now leads the power line: `controller pid 4242 late: data 40 s old`.
"""

from __future__ import annotations

import dataclasses

from factory_data import T0, fixed_snapshot
from pilot_helpers import plain

from factoryctl.live.services import LateController
from factoryctl.tui.renderables.factory_summary import FactorySummaryRenderable
from factoryctl.tui.view import summarize


def power_line(late: LateController | None, now: float) -> str:
    summary = summarize(dataclasses.replace(fixed_snapshot(), late_controller=late))
    return plain(FactorySummaryRenderable(summary, now=now), width=80).splitlines()[1]


def test_a_late_controller_leads_the_power_line_with_its_pid_and_the_data_age() -> None:
    line = power_line(LateController(4242, T0 - 40), now=T0)
    assert line.startswith("controller pid 4242 late: data 40 s old │ "), line
    assert "power 17.0/40 kW (43%)" in line, line  # at 80 columns the power stays whole, the GPUs busy go first


def test_its_data_age_shows_even_when_young() -> None:
    assert power_line(LateController(4242, T0 - 3), now=T0).startswith("controller pid 4242 late: data 3 s old")


def test_a_late_controller_that_never_stored_says_so() -> None:
    line = power_line(LateController(0, None), now=T0)
    assert line.startswith("controller late: nothing stored yet │ GPUs "), line


def test_an_on_time_source_shows_the_time_of_its_newest_sample() -> None:
    line = power_line(None, now=T0 + 1)
    assert line.startswith("GPUs ")
    assert "late" not in line
