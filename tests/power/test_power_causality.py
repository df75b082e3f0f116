"""Causality: prices published after a decision can never change it."""

from __future__ import annotations

import random

import pytest
from power_data import HOUR, SERIES, START_S, series

from factoryctl.model.power import PricePoint
from factoryctl.power.policy.config import OptimizePolicy, parse_policy
from factoryctl.power.policy.engine import EngineSetup
from factoryctl.power.simulator import replay, visible_until

HOURS = 6 * 24


def perturbed(points, cut_s, seed):
    rng = random.Random(seed)
    out = []
    for p in points:
        if p.timestamp_s >= cut_s:
            p = PricePoint(p.timestamp_s, rng.choice([None, -500.0, 5000.0, rng.uniform(-50, 400)]))
        out.append(p)
    return out


def policies(gpu):
    yield OptimizePolicy(0.05, history_s=48 * HOUR)
    yield OptimizePolicy(0.05, loss_budget="rolling", history_s=48 * HOUR)
    yield parse_policy(
        {"policy": "tiers", "tiers": [{"above_per_mwh": 100, "cap_pct": 70}], "min_dwell_minutes": 120}, gpu
    )


@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
@pytest.mark.parametrize("cut_hour", [30, 61, 100])
def test_later_prices_never_change_earlier_decisions(toy, visibility, cut_hour):
    curve, gpu = toy
    points = series(SERIES["daily_sine"](HOURS))
    cut_s = START_S + cut_hour * HOUR
    for policy in policies(gpu):
        setup = EngineSetup(policy, curve, gpu, len(points))
        before = replay(points, setup, visibility, HOUR)
        after = replay(perturbed(points, cut_s, cut_hour), setup, visibility, HOUR)
        settled = [i for i, p in enumerate(points) if visible_until(p.timestamp_s, visibility) <= cut_s]
        assert settled, "the cut leaves decisions to compare"
        assert [before[i] for i in settled] == [after[i] for i in settled]
        # Day-ahead sees at most 36 hours ahead: everything before cut - 36 h is settled.
        assert all(i in settled for i, p in enumerate(points) if p.timestamp_s < cut_s - 36 * HOUR)


def test_visibility_windows():
    noon = START_S + 12 * HOUR
    assert visible_until(START_S + 11 * HOUR, "day-ahead") == START_S + 24 * HOUR
    assert visible_until(noon, "day-ahead") == START_S + 48 * HOUR
    assert visible_until(noon, "realtime") == noon
