"""A course resumed from a checkpoint is the full replay's, to the bit; a changed past replays from the start.

`power apply` runs from cron every 15 minutes and replayed the policy's whole course each time: a year of
15-minute prices was seconds per GPU range per run, growing without bound. Each run now keeps a checkpoint (the
engine's state after the last interval that had ended, with a digest of what the replay saw up to it) and the next
run resumes from it. A resumed course that differed from the full replay by one ramp step or one bit of the loss
bank would set other limits than `power simulate` scored, so these tests compare the two for random series,
policies, visibilities, start times and checkpoints, with the feed as it was at the earlier run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from power_data import START_S, toy_curve

from factoryctl.model.power import PricePoint
from factoryctl.power.policy.config import Policy, parse_policy
from factoryctl.power.policy.engine import EngineState
from factoryctl.power.policy_course import Checkpoint, Course, course
from factoryctl.power.policy_state import Started, read_started, write_started
from factoryctl.power.simulator import visible_until

QUARTER = 900
TIERS = {"policy": "tiers", "tiers": [{"above_per_mwh": 90, "cap_pct": 80}, {"above_per_mwh": 150, "cap_pct": 60}]}


def _points(prices: list[float | None], step_s: int) -> list[PricePoint]:
    return [PricePoint(START_S + i * step_s, p) for i, p in enumerate(prices)]


def _policy(draw: st.DrawFn) -> dict[str, object]:
    rules: dict[str, object] = {
        "min_dwell_minutes": draw(st.sampled_from([0, 30, 120])),
        "stale_after_minutes": draw(st.sampled_from([60, 120, 600])),
    }
    ramp = draw(st.sampled_from([None, 5, 10, 25]))
    if ramp is not None:
        rules["ramp_pct"] = ramp
    if draw(st.booleans()):
        return TIERS | rules
    return {
        "policy": "optimize",
        "max_throughput_loss": draw(st.sampled_from([0.02, 0.05, 0.1])),
        "loss_budget": draw(st.sampled_from(["rolling", "period"])),  # `period` is held as `rolling` live
        "history_hours": draw(st.sampled_from([2, 6, 24])),
        "reserve_hours": draw(st.sampled_from([1, 6, 24])),
        "spend_hours": draw(st.sampled_from([1, 12, 24])),
    } | rules


@st.composite
def _cases(draw: st.DrawFn) -> tuple[list[PricePoint], dict[str, object], str, int, int, int]:
    """Prices, a policy, a visibility, the start, the earlier run's moment and now."""
    step = draw(st.sampled_from([QUARTER, 3600]))
    count = draw(st.integers(8, 240))
    price = st.one_of(st.none(), st.floats(-50, 400, allow_nan=False).map(lambda p: round(p, 2)))
    prices = draw(st.lists(price, min_size=count, max_size=count))
    points = _points(prices, step)
    end = points[-1].timestamp_s + step
    start = draw(st.integers(START_S - 3 * step, end))
    earlier = draw(st.integers(START_S, end + 6 * step))  # past the end: intervals without a price
    now = draw(st.integers(earlier, end + 12 * step))
    return points, _policy(draw), draw(st.sampled_from(["day-ahead", "realtime"])), start, earlier, now


def _same(resumed: Course, full: Course) -> None:
    assert resumed.action == full.action
    assert resumed.state == full.state  # the loss bank and elapsed to the bit
    assert resumed.actions == full.actions[len(full.actions) - len(resumed.actions) :]
    assert (resumed.interval_start_s, resumed.interval_end_s, resumed.replayed_from_s) == (
        full.interval_start_s,
        full.interval_end_s,
        full.replayed_from_s,
    )
    assert (resumed.price_age_s, resumed.price_per_mwh, resumed.checkpoint) == (
        full.price_age_s,
        full.price_per_mwh,
        full.checkpoint,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_a_resumed_course_is_the_full_replay(case: tuple[list[PricePoint], dict[str, object], str, int, int, int]):
    points, raw, visibility, start, earlier, now = case
    curve, gpu = toy_curve()
    policy = parse_policy(raw, gpu)
    fed = [p for p in points if p.timestamp_s < visible_until(earlier, visibility)] or points[:1]  # the feed then
    then = course(fed, policy, curve, gpu, visibility, start, earlier)
    full = course(points, policy, curve, gpu, visibility, start, now)
    resumed = course(points, policy, curve, gpu, visibility, start, now, checkpoint=then.checkpoint)
    _same(resumed, full)
    if then.checkpoint is not None:  # a regular series, only extended since: nothing it saw changed
        assert resumed.resumed_from_s == then.checkpoint.interval_start_s
        assert len(resumed.actions) < len(full.actions)


def _long_case() -> tuple[list[PricePoint], Policy, int]:
    prices: list[float | None] = [round(60 + 90 * ((i * 37) % 96) / 96, 2) for i in range(96 * 10)]
    _, gpu = toy_curve()
    raw = {"policy": "optimize", "max_throughput_loss": 0.05, "loss_budget": "rolling", "history_hours": 24}
    return _points(prices, QUARTER), parse_policy(raw, gpu), START_S + 96 * 9 * QUARTER + 100


def test_a_steady_run_replays_only_the_intervals_since_the_last_one() -> None:
    points, policy, now = _long_case()
    curve, gpu = toy_curve()
    then = course(points, policy, curve, gpu, "day-ahead", START_S, now - QUARTER)
    heard: list[int] = []
    resumed = course(
        points, policy, curve, gpu, "day-ahead", START_S, now, checkpoint=then.checkpoint,
        progress=lambda done, total: heard.append(total),
    )  # fmt: skip
    full = course(points, policy, curve, gpu, "day-ahead", START_S, now)
    _same(resumed, full)
    assert len(resumed.actions) == 2  # the last run's interval, ended since, and the one running now
    assert len(full.actions) == 96 * 9 + 1
    assert set(heard) <= {0}  # nothing long enough to tell its progress


def test_a_revised_past_price_replays_from_the_start() -> None:
    points, policy, now = _long_case()
    curve, gpu = toy_curve()
    then = course(points, policy, curve, gpu, "day-ahead", START_S, now - QUARTER)
    assert then.checkpoint is not None
    for index in (0, 400, 96 * 9 - 2):  # an old price, one in the middle, the checkpoint's own interval
        revised = list(points)
        revised[index] = replace(points[index], price_per_mwh=500.0)
        resumed = course(revised, policy, curve, gpu, "day-ahead", START_S, now, checkpoint=then.checkpoint)
        full = course(revised, policy, curve, gpu, "day-ahead", START_S, now)
        assert resumed.resumed_from_s is None
        _same(resumed, full)
    filled = [p for i, p in enumerate(points) if i != 300]  # a row missing then, filled in since: the same
    then = course(filled, policy, curve, gpu, "day-ahead", START_S, now - QUARTER)
    resumed = course(points, policy, curve, gpu, "day-ahead", START_S, now, checkpoint=then.checkpoint)
    assert resumed.resumed_from_s is None
    _same(resumed, course(points, policy, curve, gpu, "day-ahead", START_S, now))
    other = course(points, policy, curve, gpu, "realtime", START_S, now, checkpoint=then.checkpoint)
    assert other.resumed_from_s is None  # another visibility saw other prices


def test_the_state_file_keeps_a_checkpoint_to_the_bit_and_drops_a_garbled_one_alone(tmp_path: Path) -> None:
    _, gpu = toy_curve()
    state = EngineState(0.7000000000000001, START_S, 0.1 + 0.2, 12, 11.75, 1)
    kept = Checkpoint(START_S + 3600, "ab" * 32, state)
    write_started(tmp_path, Started(START_S, "f" * 64, "curve", (gpu,), ((gpu, kept),)))
    read = read_started(tmp_path)
    assert read is not None
    assert read.checkpoint(gpu) == kept
    assert read.checkpoint(gpu).state.loss_bank == 0.30000000000000004  # type: ignore[union-attr]
    document = json.loads((tmp_path / "power-policy.json").read_text())
    document["checkpoints"][0]["state"]["steps"] = "12"
    (tmp_path / "power-policy.json").write_text(json.dumps(document))
    read = read_started(tmp_path)
    assert read is not None  # the start is kept: the course goes on, replayed from it
    assert (read.started_at_s, read.ranges, read.checkpoints) == (START_S, (gpu,), ())
