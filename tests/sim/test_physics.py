"""Physics of the simulated GPU: power follows load under the cap, temperature lags, energy integrates power."""

from __future__ import annotations

import os

import pytest

from factoryctl.sim.curve import ZEUS_A40_BERT, throughput_fraction
from factoryctl.sim.physics import REASON_GPU_IDLE, REASON_SW_POWER_CAP, REASON_SW_THERMAL_SLOWDOWN
from factoryctl.sim.profiles import PROFILES, get_profile


def test_profiles_follow_the_vendor_data():
    h100 = get_profile("h100-sxm")
    assert (h100.power_default_w, h100.power_max_w, h100.power_min_w) == (700, 700, 200)
    assert (h100.slowdown_c, h100.shutdown_c, h100.memory_total_mib) == (87, 92, 80 * 1024)
    a100 = get_profile("a100-sxm4-80gb")
    assert (a100.power_default_w, a100.power_min_w) == (400, 100)
    h200 = get_profile("h200-sxm")
    assert (h200.power_default_w, h200.memory_total_mib) == (700, 141 * 1024)
    assert get_profile("b200").power_default_w == 1000
    assert get_profile("l40s").power_default_w == 350
    for p in PROFILES.values():
        assert 10 <= p.idle_w <= 150
        assert p.power_min_w < p.peak_w <= p.power_max_w
    with pytest.raises(ValueError, match="known: a100"):
        get_profile("rtx-9090")


def test_curve_is_monotonic_and_normalised():
    xs = [x for x, _ in ZEUS_A40_BERT]
    ys = [y for _, y in ZEUS_A40_BERT]
    assert xs == sorted(xs)
    assert ys == sorted(ys)
    assert throughput_fraction(1.0) == 1.0 == throughput_fraction(1.5)
    assert throughput_fraction(0.707) == pytest.approx(0.885)
    assert 0.573 < throughput_fraction(0.6) < 0.786


def test_below_the_lowest_measurement_the_curve_holds_as_power_simulate_does():
    """One convention for a measured curve's low end, in the driver and in `power simulate`: it holds, nothing is
    extrapolated (the driver used to draw a line to (0, 0), so a GPU capped to 30 % of its demand did 19 % of the
    work where the simulator, reading the same kind of curve, would say 25 %)."""
    from factoryctl.model.power import CurvePoint
    from factoryctl.power.curve import PowerCurve

    lowest_x, lowest_y = ZEUS_A40_BERT[0]
    assert throughput_fraction(0.3) == lowest_y == throughput_fraction(0.01)
    assert throughput_fraction(lowest_x) == lowest_y
    as_curve = PowerCurve.from_points([CurvePoint(x, y, x) for x, y in ZEUS_A40_BERT], "a40 zeus")
    for x in (0.01, 0.3, lowest_x, 0.5, 0.8, 1.0):
        assert throughput_fraction(x) == pytest.approx(as_curve.throughput_rel(x))


def test_idle_gpu_draws_idle_power_never_zero(make_node, clock):
    node = make_node(workload="idle")
    for _ in range(30):
        clock.advance(1.0)
        r = node.reading(0)
        assert 0.8 * 72 <= r.power_w <= 1.1 * 72
        assert r.utilization_pct == 0
        assert r.reasons & REASON_GPU_IDLE
        assert r.throughput == 0.0


def test_load_draws_near_peak_and_a_cap_holds_power_and_slows_work(make_node, clock):
    node = make_node(workload="idle")
    node.register_process(os.getpid(), [0], load=1.0, used_memory_mib=4096)
    clock.advance(1.0)
    free = node.reading(0)
    assert free.utilization_pct == 100
    assert 0.9 * 672 <= free.power_w <= 700
    assert not free.reasons & REASON_SW_POWER_CAP
    assert free.throughput == 1.0
    assert free.memory_used_mib >= 4096
    assert [p.pid for p in free.processes] == [os.getpid()]
    node.set_power_limit(0, 300)
    for _ in range(10):
        clock.advance(1.0)
        capped = node.reading(0)
        assert capped.power_w <= 300
        assert capped.reasons & REASON_SW_POWER_CAP
    assert capped.limit_w == 300
    # 300 W of ~672 W demanded: the measured curve says about a third of the work rate, and clocks drop.
    assert capped.throughput == pytest.approx(throughput_fraction(capped.power_w / 672), abs=0.05)
    assert 0.1 < capped.throughput < 0.5
    assert capped.sm_clock_mhz < free.sm_clock_mhz
    node.unregister_process(os.getpid())
    clock.advance(1.0)
    assert node.reading(0).utilization_pct == 0


def test_energy_counter_integrates_power(make_node, clock):
    node = make_node(workload="idle")
    start = node.reading(0)
    total = 0.0
    for _ in range(100):
        clock.advance(1.0)
        total += node.reading(0).power_w
    end = node.reading(0)
    assert end.energy_j - start.energy_j == pytest.approx(total, rel=0.03)
    assert 0.8 * 72 * 100 <= end.energy_j - start.energy_j <= 1.1 * 72 * 100


def test_energy_never_goes_backwards_across_a_limit_change(make_node, clock):
    node = make_node()
    node.register_process(os.getpid(), [0])
    last = node.reading(0).energy_j
    for step in range(40):
        clock.advance(0.3)
        if step % 7 == 0:
            node.set_power_limit(0, 200 + step * 10)
        energy = node.reading(0).energy_j
        assert energy >= last
        last = energy


def test_temperature_lags_power(make_node, clock):
    node = make_node(workload="idle")
    idle_temp = node.reading(0).temperature_c
    node.register_process(os.getpid(), [0])
    clock.advance(1.0)
    assert node.reading(0).temperature_c < idle_temp + 3  # power jumped, temperature has not yet
    clock.advance(20.0)
    mid = node.reading(0).temperature_c
    clock.advance(300.0)
    hot = node.reading(0).temperature_c
    assert idle_temp + 5 < mid < hot
    assert hot == pytest.approx(get_profile("h100-sxm").full_load_c, abs=3)


def test_cooling_failure_binds_thermal_slowdown(make_node, clock):
    node = make_node(workload="idle")
    node.register_process(os.getpid(), [0])
    node.inject("hot", gpus=[0])
    clock.advance(600.0)
    r = node.reading(0)
    assert r.temperature_c >= 84  # held just under GPU max (85), not at SLOWDOWN (87)
    assert r.reasons & REASON_SW_THERMAL_SLOWDOWN
    assert r.power_w < 650
    node.inject("reset")
    clock.advance(600.0)
    assert node.reading(0).temperature_c < 75


def test_synthetic_workload_keeps_some_gpus_busy_and_changes_over_minutes(make_node, clock):
    node = make_node(seed=3)
    snapshots = []
    for _ in range(12):
        snapshots.append([node.reading(i).utilization_pct for i in range(8)])
        clock.advance(300.0)
    flat = [u for snap in snapshots for u in snap]
    assert any(u == 0 for u in flat)
    assert any(u >= 80 for u in flat)
    assert len({tuple(s) for s in snapshots}) > 6  # the pattern moves
    for snap in snapshots:
        for i, u in enumerate(snap):
            assert 0 <= u <= 100, i


def test_seeded_noise_is_reproducible_and_seed_dependent(tmp_path, clock):
    from factoryctl.sim.state import SimNode

    a = SimNode(tmp_path / "a", "n1", profile="h100-sxm", gpus=8, seed=1, clock=clock)
    b = SimNode(tmp_path / "b", "n1", profile="h100-sxm", gpus=8, seed=1, clock=clock)
    c = SimNode(tmp_path / "c", "n1", profile="h100-sxm", gpus=8, seed=2, clock=clock)
    clock.advance(1000.0)
    pa = [a.reading(i).power_w for i in range(8)]
    assert pa == [b.reading(i).power_w for i in range(8)]
    assert pa != [c.reading(i).power_w for i in range(8)]


def test_uuids_look_real_and_are_unique_per_factory_node_and_gpu(tmp_path, clock):
    from factoryctl.sim.state import SimNode

    uuids = set()
    for factory in ("lab", "prod"):
        for name in ("n1", "n2"):
            node = SimNode(tmp_path, name, factory=factory, gpus=8, clock=clock)
            for i in range(8):
                uuid = node.reading(i).uuid
                assert uuid.startswith("GPU-")
                assert len(uuid) == 40
                uuids.add(uuid)
    assert len(uuids) == 32
    again = SimNode(tmp_path, "n1", factory="lab", clock=clock)
    assert again.reading(0).uuid in uuids


def test_thermal_reasons_follow_nvmls_thresholds(make_node, clock):
    """NVML: GPU_MAX is where the GPU "can be throttled below base clock" (software thermal slowdown), SLOWDOWN
    where it "will begin HW slowdown". The driver reported SwThermalSlowdown from SLOWDOWN and HwThermalSlowdown only
    at shutdown - 1, which its clamp never reached; GPU_MAX did nothing."""
    from factoryctl.sim.physics import REASON_HW_THERMAL_SLOWDOWN, GpuPhysics

    profile = get_profile("h100-sxm")
    physics = GpuPhysics(profile, 0, "f", "n", 0, synthetic=False)
    reasons = {t: physics.step(0, 700.0, t, 75.0, 1.0).reasons for t in (84.9, 85.0, 86.9, 87.0, 91.0)}
    thermal = REASON_SW_THERMAL_SLOWDOWN | REASON_HW_THERMAL_SLOWDOWN
    assert [reasons[t] & thermal for t in (84.9, 85.0, 86.9, 87.0, 91.0)] == [
        0,
        REASON_SW_THERMAL_SLOWDOWN,
        REASON_SW_THERMAL_SLOWDOWN,
        thermal,
        thermal,
    ]
    assert physics.step(0, 700.0, 87.0, 75.0, 1.0).power_w == profile.idle_w  # hardware slowdown: clocks cut
    node = make_node(workload="idle", gpus=1)
    node.register_process(os.getpid(), [0])
    node.inject("hot")
    clock.advance(900.0)
    hottest = max(_read_temperature(node, clock) for _ in range(120))
    assert profile.gpu_max_c <= hottest < profile.slowdown_c  # the software slowdown holds it under SLOWDOWN


def _read_temperature(node, clock) -> float:
    clock.advance(1.0)
    return node.reading(0).temperature_c
