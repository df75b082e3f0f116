"""`tiers` compares a price someone published, never a forecast: an operator's threshold must be auditable.

In realtime the current interval's price is not yet known; `optimize` prices it with a forecast (persistence moved
by yesterday's change), but a tier fires on the last published price, as docs/power.md says.
"""

from __future__ import annotations

import pytest
from power_data import HOUR, series

from factoryctl.model.power import GpuPowerRange
from factoryctl.power.policy.config import parse_policy
from factoryctl.power.policy.engine import EngineSetup
from factoryctl.power.simulator import replay

GPU = GpuPowerRange(100.0, 400.0, 400.0)
TIER_120 = {"policy": "tiers", "tiers": [{"above_per_mwh": 120, "cap_pct": 75}]}


def test_a_realtime_tier_fires_on_the_last_published_price_not_the_forecast(toy):
    """Yesterday's price rose 18 into this hour, so the forecast is 113.63 + 9 = 122.63 (above 120) but the last
    published price, 113.63, is below the tier: the limit stays at the base."""
    curve, gpu = toy
    yesterday = [100.0] * 24
    yesterday[4] = 118.0  # 03:00 -> 04:00 rose by 18
    today = [100.0, 100.0, 100.0, 113.63, 90.0]
    policy = parse_policy(TIER_120, gpu)
    actions = replay(series(yesterday + today), EngineSetup(policy, curve, gpu), "realtime", HOUR)
    at_four = actions[24 + 4]
    assert at_four.price_used_per_mwh == pytest.approx(113.63)
    assert at_four.power_limit_frac == pytest.approx(1.0)
    assert at_four.reason == "tier"


def test_a_realtime_tier_fires_one_interval_after_the_price_crossed(toy):
    curve, gpu = toy
    policy = parse_policy(TIER_120, gpu)
    actions = replay(series([100.0, 130.0, 100.0, 100.0]), EngineSetup(policy, curve, gpu), "realtime", HOUR)
    assert [a.power_limit_frac for a in actions[1:]] == pytest.approx([1.0, 0.75, 1.0])
