"""`scheduler.preemption` and `scheduler.preemption_grace` are what the live passes plan with."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError
from factoryctl.jobs.tick import scheduler_config
from factoryctl.scheduler.policy import POLICIES


def test_the_passes_preempt_with_the_configured_grace() -> None:
    config = parse_config("nodes: {a: {}}\nscheduler: {preemption: true, preemption_grace: 90s}\n", Path("f.yaml"))
    sched = scheduler_config(config)
    assert (sched.preemption, sched.grace_s) == (True, 90.0)


def test_by_default_nothing_is_preempted_and_the_grace_is_the_simulators() -> None:
    sched = scheduler_config(parse_config("nodes: {a: {}}\n", Path("f.yaml")))
    assert (sched.preemption, sched.grace_s) == (False, POLICIES["default"].grace_s)


def test_a_grace_over_a_day_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("nodes: {a: {}}\nscheduler: {preemption_grace: 25h}\n", Path("f.yaml"))
    assert "longer than 1d" in caught.value.message
