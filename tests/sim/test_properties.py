"""Properties of the simulated physics over random inputs (hypothesis)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factoryctl.sim.physics import GpuPhysics
from factoryctl.sim.profiles import PROFILES
from factoryctl.sim.state import READING_TTL_S, SimNode


@settings(max_examples=150, deadline=None)
@given(
    key=st.sampled_from(sorted(PROFILES)),
    seed=st.integers(0, 2**31),
    second=st.integers(0, 2**40),
    limit_frac=st.floats(0.0, 1.0),
    temperature=st.floats(20.0, 100.0),
    extra=st.floats(0.0, 1.0),
)
def test_power_stays_between_idle_and_the_cap(key, seed, second, limit_frac, temperature, extra):
    p = PROFILES[key]
    limit = p.power_min_w + limit_frac * (p.power_max_w - p.power_min_w)
    tick = GpuPhysics(p, seed, "f", "n", 0, synthetic=True).step(second, limit, temperature, p.ambient_c, extra)
    assert 0.8 * p.idle_w <= tick.power_w <= limit
    assert 0.0 <= tick.load <= 1.0
    assert 0.0 <= tick.throughput <= 1.0
    assert p.sm_clock_idle_mhz <= tick.sm_clock_mhz <= p.sm_clock_max_mhz
    assert bool(tick.reasons & 0x1) == (tick.load == 0.0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 120.0), st.one_of(st.none(), st.floats(200.0, 700.0)), st.integers(0, 3)),
        min_size=1,
        max_size=8,
    )
)
@example(steps=[(0.03125, None, 0), (0.0, 200.0, 0)])  # a cached reading, then a limit change at the same instant
def test_energy_never_decreases_and_is_bounded_by_peak_power(tmp_path_factory, steps):
    now = [1_700_000_000.5]
    start = now[0]
    node = SimNode(tmp_path_factory.mktemp("s"), "n1", profile="h100-sxm", gpus=4, seed=9, clock=lambda: now[0])
    first = [node.reading(i).energy_j for i in range(4)]
    last = list(first)
    for advance, limit, gpu in steps:
        before = now[0]
        now[0] += advance
        elapsed = now[0] - before  # what the float clock really moved
        if limit is not None:
            node.set_power_limit(gpu, limit)
        for i in range(4):
            r = node.reading(i)
            assert r.energy_j >= last[i]
            # A reading may be up to READING_TTL_S old (as NVML's own sample cache), so a step may show energy
            # from just before it; from the start, the counter never runs ahead of peak power.
            assert r.energy_j - last[i] <= 700.0 * (elapsed + READING_TTL_S) + 1e-6
            assert r.energy_j - first[i] <= 700.0 * (now[0] - start) + 1e-6
            assert r.power_w <= r.limit_w
            last[i] = r.energy_j


def test_state_files_are_valid_json_after_every_change(tmp_path: Path):
    import json

    node = SimNode(tmp_path, "n1", gpus=2)
    for watts in (300, 400, None):
        node.set_power_limit(1, watts)
        data = json.loads(next(tmp_path.rglob("n1.json")).read_text())
        assert data["gpus"][1]["limit_w"] == (float(watts) if watts is not None else None)
