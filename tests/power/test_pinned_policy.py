"""Power-policy behaviour that mutation testing found unpinned: each test fails on a one-token change of the policy."""

from __future__ import annotations

import pytest
from power_data import HOUR, SERIES, START_S, series
from test_power_set_mixed_ranges import _node

from factoryctl.errors import UsageError
from factoryctl.model.power import GpuPowerRange
from factoryctl.power.limit_checks import check_gpus, check_range
from factoryctl.power.policy.config import OptimizePolicy, parse_policy
from factoryctl.power.policy.engine import EngineSetup, EngineState, decide
from factoryctl.power.policy.view import PriceView
from factoryctl.power.simulator import replay, simulate

HOURS = 10 * 24


def test_a_rolling_budget_is_spent_in_the_expensive_hours_not_kept_in_hand(toy):
    # The reserve is 24 h of budget at rate D (reserve_hours: 24): what lies above it is spent, so over ten days of
    # daily price swings nearly the whole 5 % is lost in the dear hours and the saving beats the blind setting.
    curve, gpu = toy
    policy = OptimizePolicy(0.05, loss_budget="rolling")
    result = simulate(series(SERIES["daily_sine"](HOURS)), curve, gpu, policy, "day-ahead", 0.05)
    assert 4.0 <= result.score.throughput_loss_pct <= 5.0 + 1e-9
    assert result.blind_saving_pct is not None
    assert result.score.saving_pct is not None
    assert result.score.saving_pct > result.blind_saving_pct


def test_an_optimize_policy_file_without_its_durations_takes_the_documented_ones():
    # docs/power.md: history_hours 168, reserve_hours 24, spend_hours 24.
    gpu = GpuPowerRange(100.0, 400.0, 400.0)
    bare = {"policy": "optimize", "max_throughput_loss": 0.05, "loss_budget": "rolling"}
    spelled = {**bare, "history_hours": 168, "reserve_hours": 24, "spend_hours": 24}
    assert parse_policy(bare, gpu) == parse_policy(spelled, gpu)


def test_ranges_that_differ_only_in_their_lowest_limit_get_the_every_gpu_hint():
    samples = [_node("a1", 100, 400), _node("b1", 150, 400)]
    with pytest.raises(UsageError) as refused:
        check_range(samples, None, 120)  # type: ignore[arg-type]
    assert refused.value.hint == (
        "pick a value in 150-400 W, which every addressed GPU takes, or pass --clamp to clamp to each GPU's range."
    )


def test_a_tier_acts_on_the_interval_under_way_until_the_next_one_begins(toy):
    # Both hours are published (day-ahead); one second before the dear hour the cheap hour's tier still holds.
    curve, gpu = toy
    tiers = {"policy": "tiers", "tiers": [{"above_per_mwh": 200, "cap_w": 200}]}
    setup = EngineSetup(parse_policy(tiers, gpu), curve, gpu)
    prices = series([50, 250])
    before, _ = decide(setup, PriceView(START_S + HOUR - 1, HOUR, prices), EngineState())
    assert (before.power_limit_frac, before.price_used_per_mwh) == (1.0, 50)
    at, _ = decide(setup, PriceView(START_S + HOUR, HOUR, prices), EngineState())
    assert (at.power_limit_frac, at.price_used_per_mwh) == (0.5, 250)


def test_the_failsafe_applies_at_once_whatever_the_dwell_and_ramp(toy):
    # Prices stop after the first hour; once they are 90 minutes old the fail-safe (tiers: the base limit) is set
    # in one step, not held by the 3-hour dwell nor ramped 20 % at a time.
    curve, gpu = toy
    mapping = {
        "policy": "tiers",
        "tiers": [{"above_per_mwh": 200, "cap_w": 200}],
        "ramp_pct": 20,
        "min_dwell_minutes": 180,
        "stale_after_minutes": 90,
    }
    prices = [250, None, None, None, None]
    setup = EngineSetup(parse_policy(mapping, gpu), curve, gpu, len(prices))
    actions = replay(series(prices), setup, "day-ahead", HOUR)
    assert [(a.power_limit_frac, a.reason) for a in actions] == [
        (0.5, "tier"),
        (0.5, "tier"),
        (1.0, "failsafe"),
        (1.0, "failsafe"),
        (1.0, "failsafe"),
    ]


def test_ranges_that_meet_in_one_value_offer_that_value():
    samples = [_node("a1", 100, 200), _node("b1", 200, 300)]
    with pytest.raises(UsageError) as refused:
        check_range(samples, None, 250)  # type: ignore[arg-type]
    assert refused.value.hint == (
        "pick a value in 200-200 W, which every addressed GPU takes, or pass --clamp to clamp to each GPU's range."
    )


@pytest.mark.parametrize(("gpus", "has"), [(1, "GPU 0"), (2, "GPUs 0-1")])
def test_a_missing_gpu_is_refused_naming_what_the_node_has(gpus, has):
    with pytest.raises(UsageError) as refused:
        check_gpus([_node("solo", 100, 400, gpus=gpus)], [3])  # type: ignore[list-item]
    assert refused.value.message == f"solo has no GPU 3 (it has {has}); nothing was changed."


def test_a_cap_at_the_gpus_lowest_limit_is_not_flagged_clamped(toy):
    curve, gpu = toy
    tiers = {"policy": "tiers", "tiers": [{"above_per_mwh": 0, "cap_w": 100}]}
    action, _ = decide(
        EngineSetup(parse_policy(tiers, gpu), curve, gpu), PriceView(START_S, HOUR, series([50])), EngineState()
    )
    assert (action.power_limit_frac, action.clamped) == (0.25, False)


def test_an_optimize_step_decides_the_same_without_chains_passed_in(toy):
    # The controller may call `decide` without precomputed chains: they are then computed, not skipped.
    curve, gpu = toy
    setup = EngineSetup(OptimizePolicy(0.05), curve, gpu, 48)
    view = PriceView(START_S + 24 * HOUR, HOUR, series(SERIES["daily_sine"](48)))
    assert decide(setup, view, EngineState()) == decide(setup, view, EngineState(), setup.chains())
