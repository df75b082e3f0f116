"""Tiers and the common rules: hysteresis, ramp, floor, fail-safe on stale prices, clamping; policy files."""

from __future__ import annotations

import pytest
from power_data import HOUR, START_S, series

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange
from factoryctl.power.policy.config import OptimizePolicy, TiersPolicy, parse_policy
from factoryctl.power.policy.engine import EngineSetup, EngineState, decide
from factoryctl.power.policy.view import PriceView
from factoryctl.power.simulator import replay

GPU = GpuPowerRange(100.0, 400.0, 400.0)
TIERS = {"policy": "tiers", "tiers": [{"above_per_mwh": 100, "cap_pct": 75}, {"above_per_mwh": 200, "cap_w": 200}]}


def run(toy, mapping, prices, visibility="day-ahead"):
    curve, gpu = toy
    policy = parse_policy(mapping, gpu)
    actions = replay(series(prices), EngineSetup(policy, curve, gpu, len(prices)), visibility, HOUR)
    return [a.power_limit_frac for a in actions], actions


def test_tiers_map_prices_to_caps_in_pct_and_watts(toy):
    fracs, actions = run(toy, TIERS, [50, 100, 150, 250, 99.9])
    assert fracs == pytest.approx([1.0, 0.75, 0.75, 0.5, 1.0])
    assert {a.reason for a in actions} == {"tier"}


def test_pct_is_of_the_default_limit_not_the_largest(toy):
    _curve, _ = toy
    gpu = GpuPowerRange(100.0, 400.0, 300.0)
    policy = parse_policy({"policy": "tiers", "tiers": [{"above_per_mwh": 0, "cap_pct": 100}]}, gpu)
    assert isinstance(policy, TiersPolicy)
    assert policy.tiers[0].cap_frac == pytest.approx(0.75)


def test_hysteresis_holds_a_new_limit_for_the_dwell_time(toy):
    mapping = {**TIERS, "min_dwell_minutes": 180}
    fracs, actions = run(toy, mapping, [250, 50, 50, 50, 250, 50])
    assert fracs == pytest.approx([0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    assert [a.reason for a in actions][:4] == ["tier", "dwell", "dwell", "tier"]


def test_ramp_limits_each_change(toy):
    fracs, actions = run(toy, {**TIERS, "ramp_pct": 20}, [250, 50, 50, 250, 250])
    assert fracs == pytest.approx([0.5, 0.7, 0.9, 0.7, 0.5])
    assert actions[1].reason == "ramp"


def test_floor_keeps_limits_up(toy):
    fracs, actions = run(toy, {**TIERS, "floor_w": 260}, [250, 150])
    assert fracs == pytest.approx([0.65, 0.75])
    assert actions[0].reason == "floor"
    assert not actions[0].clamped


def test_caps_outside_the_gpu_range_are_clamped_and_flagged(toy):
    mapping = {"policy": "tiers", "tiers": [{"above_per_mwh": 100, "cap_w": 50}], "base_w": 500}
    fracs, actions = run(toy, mapping, [150, 50])
    assert fracs == pytest.approx([0.25, 1.0])
    assert [a.clamped for a in actions] == [True, True]


def test_stale_prices_engage_the_failsafe(toy):
    mapping = {**TIERS, "failsafe_pct": 60, "stale_after_minutes": 120}
    prices = [250, 250, None, None, None, None, 250]
    fracs, actions = run(toy, mapping, prices)
    # One and two hours old is fresh enough (the last price holds); three hours is stale.
    assert [a.reason for a in actions] == ["tier", "tier", "tier", "tier", "failsafe", "failsafe", "tier"]
    assert fracs[4:6] == pytest.approx([0.6, 0.6])


def test_failsafe_when_nothing_was_ever_published(toy):
    curve, gpu = toy
    setup = EngineSetup(OptimizePolicy(0.05), curve, gpu)
    action, state = decide(setup, PriceView(START_S, HOUR, []), EngineState())
    assert action.reason == "failsafe"
    # optimize's default fail-safe spends exactly its budget: throughput 1 - D.
    assert curve.throughput_rel(action.power_limit_frac) == pytest.approx(0.95)
    assert state.loss_bank == pytest.approx(0.0)


def test_realtime_tiers_use_the_last_published_price(toy):
    fracs, _ = run(toy, TIERS, [250, 50, 50], visibility="realtime")
    assert fracs[1] == pytest.approx(0.5)  # at hour 1 only hour 0 (250) is known
    assert fracs[2] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"policy": "tiers", "tiers": [{"above_per_mwh": 1, "cap_pct": 50}], "flor_pct": 10},
            "did you mean 'floor_pct'",
        ),
        ({"policy": "tiers"}, "non-empty list"),
        ({"policy": "tiers", "tiers": [{"above_per_mwh": 1}]}, "cap_pct or cap_w"),
        ({"policy": "tiers", "tiers": [{"above_per_mwh": "x", "cap_pct": 5}]}, "must be a number"),
        ({"policy": "tiers", "tiers": [{"above_per_mwh": 1, "cap_pct": 5, "cap_w": 9}]}, "not both"),
        ({"policy": "magic"}, "unknown policy"),
        ({"policy": "optimize"}, "needs max_throughput_loss"),
        ({"policy": "optimize", "max_throughput_loss": 1.5}, "fraction"),
        ({"policy": "optimize", "max_throughput_loss": 0.1, "loss_budget": "weekly"}, "loss_budget"),
    ],
)
def test_bad_policy_files_are_usage_errors(mapping, message):
    error_text = ""
    with pytest.raises(UsageError) as caught:
        parse_policy(mapping, GPU)
    error_text = caught.value.message + " " + (caught.value.hint or "")
    assert message in error_text


def test_command_line_budget_must_agree_with_the_file():
    with pytest.raises(UsageError, match="command line"):
        parse_policy({"max_throughput_loss": 0.1}, GPU, max_throughput_loss=0.05)
    policy = parse_policy({"history_hours": 48}, GPU, max_throughput_loss=0.05)
    assert isinstance(policy, OptimizePolicy)
    assert policy.history_s == 48 * 3600
    assert policy.max_throughput_loss == 0.05
