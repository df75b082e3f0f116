"""Fixtures of the power tests: a toy curve file and the toy curve itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from power_data import curve_csv_text, toy_curve

from factoryctl.model.power import GpuPowerRange
from factoryctl.power.curve import PowerCurve


@pytest.fixture
def curve_file(tmp_path: Path) -> Path:
    path = tmp_path / "curves.csv"
    path.write_text(curve_csv_text())
    return path


@pytest.fixture
def toy() -> tuple[PowerCurve, GpuPowerRange]:
    return toy_curve()
