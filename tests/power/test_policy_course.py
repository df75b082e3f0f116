"""A live course (policy_course.py) is the simulator's schedule: the same replay, cut at the interval running now.

`power apply` promises to do on nodes what `power simulate` scored; so for any prices, policy, visibility and
moment, the course's actions are the simulator's first actions up to that moment, and the loss it reports is the
simulator's score of them. Past the series' end the intervals go on without a price until the fail-safe.
"""

from __future__ import annotations

import random

import pytest
from power_data import HOUR, series, toy_curve

from factoryctl.model.power import CurvePoint
from factoryctl.power.curve_file import builtin_curve
from factoryctl.power.policy.config import parse_policy
from factoryctl.power.policy_course import course, loss_so_far
from factoryctl.power.simulator import inspect_series, score, simulate
from factoryctl.sim.curve import ZEUS_A40_BERT

POLICIES = {
    "tiers": {
        "policy": "tiers",
        "tiers": [{"above_per_mwh": 90, "cap_pct": 80}, {"above_per_mwh": 150, "cap_pct": 60}],
        "min_dwell_minutes": 120,
        "ramp_pct": 10,
    },
    "optimize": {"policy": "optimize", "max_throughput_loss": 0.05, "loss_budget": "rolling", "history_hours": 24},
}


def _prices(seed: int, hours: int = 24 * 5) -> list:
    rng = random.Random(seed)
    values = [rng.choice([None] + [round(rng.uniform(-20, 250), 2)] * 12) for _ in range(hours)]
    return series(values)


@pytest.mark.parametrize("kind", sorted(POLICIES))
@pytest.mark.parametrize("visibility", ["day-ahead", "realtime"])
@pytest.mark.parametrize("seed", range(4))
def test_the_course_is_the_simulators_schedule_up_to_now(kind: str, visibility: str, seed: int) -> None:
    curve, gpu = toy_curve()
    policy = parse_policy(POLICIES[kind], gpu)
    points = _prices(seed)
    whole = simulate(points, curve, gpu, policy, visibility, 0.05).actions
    hours = inspect_series(points).hours(len(points))
    rng = random.Random(seed)
    for index in [*sorted(rng.sample(range(len(points)), 6)), len(points) - 1]:
        now = points[index].timestamp_s + rng.randrange(HOUR)  # anywhere in the interval
        live = course(points, policy, curve, gpu, visibility, points[0].timestamp_s, now)
        assert live.actions == whole[: index + 1]
        assert (live.interval_start_s, live.interval_end_s) == (
            points[index].timestamp_s,
            points[index].timestamp_s + HOUR,
        )
        loss = loss_so_far(policy, live.state)
        if kind == "optimize":
            expected = score(points[: index + 1], [a.power_limit_frac for a in live.actions], curve, hours[: index + 1])
            assert loss == pytest.approx(expected.throughput_loss_pct / 100, abs=1e-9)
        else:
            assert loss is None


def test_a_course_starts_at_the_interval_holding_its_start() -> None:
    curve, gpu = toy_curve()
    policy = parse_policy(POLICIES["tiers"], gpu)
    points = _prices(7)
    start = points[30].timestamp_s + 600
    live = course(points, policy, curve, gpu, "day-ahead", start, points[40].timestamp_s)
    assert live.replayed_from_s == points[30].timestamp_s
    assert [a.timestamp_s for a in live.actions] == [p.timestamp_s for p in points[30:41]]


def test_past_the_last_price_the_intervals_go_on_until_the_failsafe() -> None:
    curve, gpu = toy_curve()
    policy = parse_policy({**POLICIES["tiers"], "failsafe_pct": 50}, gpu)
    points = series([200.0] * 48)
    end = points[-1].timestamp_s + HOUR
    live = course(points, policy, curve, gpu, "realtime", points[0].timestamp_s, end + 5 * HOUR + 10)
    assert [a.timestamp_s for a in live.actions[-6:]] == [end + h * HOUR for h in range(6)]
    assert live.action.reason == "failsafe"
    assert live.action.power_limit_frac == 0.5
    assert live.price_age_s == 6 * HOUR + 10
    assert live.price_per_mwh == 200.0


def test_the_built_in_curve_is_the_drivers_read_by_its_limits() -> None:
    curve = builtin_curve()
    assert curve.name == "built-in a40 squad/bert_base"
    assert [round(p.pl_frac, 3) for p in curve.points] == [0.333, 0.417, 0.5, 0.583, 0.667, 0.75, 0.833, 0.917, 1.0]
    assert [(p.power_rel, p.throughput_rel) for p in curve.points] == list(ZEUS_A40_BERT)
    assert curve.points[-1] == CurvePoint(1.0, 1.0, 1.0)
