"""A cost that rounds to zero is shown as 0.00, never -0.00 (a negative price over a little energy)."""

from __future__ import annotations

from factoryctl.cli.telemetry_history import ENERGY_COLUMNS


def _show_cost(value: float | None) -> str:
    column = next(c for c in ENERGY_COLUMNS if c.key == "cost")
    assert column.show is not None
    return column.show(value)


def test_a_cost_rounding_to_zero_has_no_minus_sign() -> None:
    assert _show_cost(-0.004096) == "0.00"
    assert _show_cost(-0.0) == "0.00"


def test_real_negative_and_positive_costs_keep_their_sign() -> None:
    assert _show_cost(-1.236) == "-1.24"
    assert _show_cost(2.5) == "2.50"
    assert _show_cost(None) == "-"
