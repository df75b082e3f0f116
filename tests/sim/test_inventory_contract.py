"""The inventory's `sim:` vocabulary and the simulated driver agree (config and sim are written separately)."""

from __future__ import annotations

from typing import get_args

from factoryctl.sim.nvml import UNSUPPORTABLE_FIELDS
from factoryctl.sim.profiles import PROFILES


def test_config_profiles_are_the_simulators_profiles():
    from factoryctl.config_schema import Profile

    assert set(get_args(Profile)) == set(PROFILES)


def test_every_gpu_field_but_identity_can_be_withheld():
    from factoryctl.model.telemetry import GPU_FIELDS

    assert set(UNSUPPORTABLE_FIELDS) == set(GPU_FIELDS) - {"node", "index", "null_reasons"}


def test_the_agent_sends_every_gpu_field_the_model_reads():
    """The agent keeps its own copy of the field list (it may not import `model`): the two must not drift."""
    from factoryctl.agent.sampler import GPU_FIELDS as AGENT_FIELDS
    from factoryctl.model.telemetry import GPU_FIELDS

    assert set(GPU_FIELDS) - {"node"} <= set(AGENT_FIELDS)
