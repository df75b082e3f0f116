"""Sampling tiers in the agent: fast fields read from NVML every sample, the slow tier once per its interval.

NVML calls are counted at the pynvml boundary: a proxy forwards every call to the simulated driver and counts it,
so the sampler runs exactly as on a node. The simulated driver and the sampler share one fake clock, so "an
interval later" is exact and the simulated physics (energy counter, temperature) moves with it.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from factoryctl.agent.nvml import NvmlSession
from factoryctl.agent.sampler import (
    DEFAULT_SLOW_INTERVAL_S,
    GPU_FIELDS,
    SLOW_FIELDS,
    GpuSampler,
    node_sample,
    slow_max_age,
)
from factoryctl.agent.schedule import stream_max_age
from factoryctl.sim import nvml as sim

FAST_CALLS = (
    "nvmlDeviceGetUtilizationRates",
    "nvmlDeviceGetPowerUsage",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetClockInfo",
    "nvmlDeviceGetCurrentClocksEventReasons",
    "nvmlDeviceGetComputeRunningProcesses",
)
SLOW_CALLS = (
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetTotalEnergyConsumption",
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetTotalEccErrors",
)
INTERVAL_S = 1.0
SLOW_INTERVAL_S = 5.0
MAX_AGE = slow_max_age(INTERVAL_S, SLOW_INTERVAL_S)


class Clock:
    """Seconds that move only when the test says (unix time for the simulator, monotonic for the sampler)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingDriver:
    """pynvml-shaped: forwards to the simulated driver and counts each device call per GPU index."""

    def __init__(self, fail: dict[str, list[int]] | None = None) -> None:
        self.calls: Counter[tuple[str, int]] = Counter()
        self.fail = fail or {}  # function -> error codes to raise on its next calls, one per call

    def __getattr__(self, name: str) -> Any:
        fn = getattr(sim, name)
        if not (callable(fn) and name.startswith("nvmlDevice")):
            return fn

        def call(*args: Any) -> Any:
            index = getattr(args[0], "index", -1) if args else -1
            self.calls[(name, index)] += 1
            if self.fail.get(name):
                raise sim.NVMLError(self.fail[name].pop(0))
            return fn(*args)

        return call

    def count(self, name: str, index: int = 0) -> int:
        return self.calls[(name, index)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def node(tmp_path: Any, clock: Clock) -> Iterator[None]:
    sim.configure(node="t1", state_dir=str(tmp_path), profile="h100-sxm", gpus=2, workload="synthetic", clock=clock)
    yield
    sim.configure(node="unused")


def run(sampler: GpuSampler, clock: Clock, samples: int, max_age: float | None = MAX_AGE) -> list[dict[str, Any]]:
    """`samples` node samples one interval apart; returns their GPU lists' dicts."""
    out = []
    for _ in range(samples):
        out.append(node_sample(sampler, 2, "sim", {}, max_age))
        clock.now += INTERVAL_S
    return out


@pytest.mark.usefixtures("node")
def test_slow_fields_are_read_once_per_tier_interval_fast_ones_every_sample(clock):
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    run(sampler, clock, 12)  # t = 0 .. 11 s: the slow tier is due at 0, 5 and 10 s
    for index in (0, 1):
        assert {name: driver.count(name, index) for name in FAST_CALLS} == dict.fromkeys(FAST_CALLS, 12)
        assert {name: driver.count(name, index) for name in SLOW_CALLS} == dict.fromkeys(SLOW_CALLS, 3)
        assert driver.count("nvmlDeviceGetUUID", index) == 1  # static facts: once


@pytest.mark.usefixtures("node")
def test_without_a_max_age_or_with_a_slow_interval_of_one_interval_every_field_is_read_every_time(clock):
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    run(sampler, clock, 3, max_age=None)  # a one-shot `sample` request
    run(sampler, clock, 3, max_age=slow_max_age(INTERVAL_S, INTERVAL_S))  # tiers off
    assert {name: driver.count(name) for name in SLOW_CALLS} == dict.fromkeys(SLOW_CALLS, 6)


@pytest.mark.usefixtures("node")
def test_a_stream_with_a_slow_interval_of_one_interval_reads_every_field_also_after_a_short_gap(clock):
    # Aligned sampling (agent/schedule.py) gives one uneven gap after the first sample and after a wall-clock step,
    # and a late wake-up before it can leave less than half an interval between two reads; a stream whose slow
    # interval is its interval still reads every field on that sample.
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    max_age = stream_max_age(INTERVAL_S, INTERVAL_S)
    node_sample(sampler, 2, "sim", {}, max_age)
    clock.now += 0.01  # the next wall-clock multiple of the interval was 10 ms away
    node_sample(sampler, 2, "sim", {}, max_age)
    assert driver.count("nvmlDeviceGetTemperature") == 2
    assert stream_max_age(INTERVAL_S, SLOW_INTERVAL_S) == MAX_AGE  # a longer slow interval keeps its tier


@pytest.mark.usefixtures("node")
def test_jitter_does_not_push_a_slow_read_to_the_sample_after(clock):
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    node_sample(sampler, 2, "sim", {}, MAX_AGE)
    for late in (1.01, 0.98, 1.02, 0.97, 1.0):  # a stream's ticks are never exactly an interval apart
        clock.now += late
        node_sample(sampler, 2, "sim", {}, MAX_AGE)
    assert driver.count("nvmlDeviceGetTemperature") == 2  # at 0 s and at 4.98 s, not at 5.98 s


@pytest.mark.usefixtures("node")
def test_the_wire_shape_is_the_same_whether_the_slow_tier_is_read_or_reused(clock):
    sampler = GpuSampler(NvmlSession(CountingDriver()), clock=clock)
    fresh = node_sample(sampler, 2, "sim", {}, None)["gpus"]
    samples = [s["gpus"] for s in run(sampler, clock, 6)]
    for gpus in [fresh, *samples]:
        for gpu in gpus:
            assert list(gpu) == list(GPU_FIELDS)
            assert gpu["null_reasons"] == {}
            assert all(gpu[f] is not None for f in GPU_FIELDS)
            assert isinstance(gpu["temperature_c"], float)
            assert isinstance(gpu["ecc_uncorrected"], int)
            assert gpu["memory_total_mib"] == fresh[gpu["index"]]["memory_total_mib"]
    json.dumps(samples, allow_nan=False)  # still plain JSON


@pytest.mark.usefixtures("node")
def test_reused_slow_values_are_the_last_read_and_update_after_their_interval(clock):
    sampler = GpuSampler(NvmlSession(CountingDriver()), clock=clock)
    gpus = [s["gpus"][0] for s in run(sampler, clock, 11)]
    energy = [g["energy_j"] for g in gpus]
    assert energy[0:5] == [energy[0]] * 5  # read at 0 s, reused at 1-4 s
    assert energy[5:10] == [energy[5]] * 5
    assert energy[0] < energy[5] < energy[10]  # and read again at 5 s and 10 s
    assert len({g["power_w"] for g in gpus}) > 1  # the fast tier moves every sample meanwhile
    assert sim.sim_node().reading(0).energy_j > energy[10]  # the counter ran on; the agent read it when due


def test_unsupported_slow_fields_keep_their_null_reason_while_reused(tmp_path, clock):
    sim.configure(node="t2", state_dir=str(tmp_path), gpus=1, unsupported=["ecc_uncorrected"], clock=clock)
    try:
        sampler = GpuSampler(NvmlSession(CountingDriver()), clock=clock)
        reasons = []
        for _ in range(4):  # read at 0 s, reused at 1-3 s
            reasons.append(node_sample(sampler, 1, "sim", {}, MAX_AGE)["gpus"][0]["null_reasons"])
            clock.now += INTERVAL_S
        assert reasons == [{"ecc_uncorrected": "not supported"}] * 4
    finally:
        sim.configure(node="unused")


@pytest.mark.usefixtures("node")
def test_a_read_that_failed_for_now_is_retried_on_the_next_sample(clock):
    driver = CountingDriver(fail={"nvmlDeviceGetTemperature": [sim.NVML_ERROR_TIMEOUT]})
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    first, second, third = (s["gpus"][0] for s in run(sampler, clock, 3))
    assert first["temperature_c"] is None
    assert first["null_reasons"] == {"temperature_c": "timeout"}
    assert second["temperature_c"] is not None
    assert second["null_reasons"] == {}
    assert driver.count("nvmlDeviceGetTemperature") == 2  # 0 s failed, 1 s read; 2 s reuses the 1 s read
    assert third["temperature_c"] == second["temperature_c"]


@pytest.mark.usefixtures("node")
def test_xid_events_and_lost_gpus_show_on_the_next_sample_whatever_the_tier(clock):
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    run(sampler, clock, 2)  # slow tier read at 0 s, not due again before 5 s
    sim.sim_node().inject("xid", gpus=[1], xid=13)
    gpus = run(sampler, clock, 1)[0]["gpus"]
    assert [x["xid"] for x in gpus[1]["xid_events"]] == [13]
    assert gpus[0]["xid_events"] == []
    assert driver.count("nvmlDeviceGetTotalEccErrors", 1) == 2  # an XID makes its GPU's slow tier due
    assert driver.count("nvmlDeviceGetTotalEccErrors", 0) == 1
    sim.sim_node().inject("lost", gpus=[0])
    lost = run(sampler, clock, 1)[0]["gpus"][0]
    assert set(lost["null_reasons"].values()) == {"gpu_lost"}
    assert list(lost) == list(GPU_FIELDS)
    sim.sim_node().inject("reset")
    back = run(sampler, clock, 1)[0]["gpus"][0]
    assert back["null_reasons"] == {}
    assert driver.count("nvmlDeviceGetTotalEccErrors", 0) == 2  # back from lost: everything read afresh


@pytest.mark.usefixtures("node")
def test_an_uncorrectable_ecc_error_is_not_delayed_by_the_slow_tier(clock):
    driver = CountingDriver()
    sampler = GpuSampler(NvmlSession(driver), clock=clock)
    run(sampler, clock, 2)
    sim.sim_node().inject("ecc", gpus=[1])  # the driver's double-bit ECC event makes GPU 1's slow tier due
    gpus = run(sampler, clock, 1)[0]["gpus"]
    assert [g["ecc_uncorrected"] for g in gpus] == [0, 1]
    assert gpus[1]["xid_events"] == []  # an ECC event is not an XID
    assert driver.count("nvmlDeviceGetTotalEccErrors", 0) == 1


@pytest.mark.usefixtures("node")
def test_a_board_that_refuses_ecc_events_still_delivers_xids(clock):
    class NoEccEvents(CountingDriver):
        def nvmlDeviceRegisterEvents(self, handle: Any, types: int, events: Any) -> None:
            if types & sim.nvmlEventTypeDoubleBitEccError:
                raise sim.NVMLError(sim.NVML_ERROR_NOT_SUPPORTED)
            sim.nvmlDeviceRegisterEvents(handle, types, events)

    sampler = GpuSampler(NvmlSession(NoEccEvents()), clock=clock)
    run(sampler, clock, 1)
    sim.sim_node().inject("xid", gpus=[0], xid=48)
    assert [x["xid"] for x in run(sampler, clock, 1)[0]["gpus"][0]["xid_events"]] == [48]


def test_the_agents_slow_tier_is_the_controllers():
    from factoryctl.config_schema import ControllerSettings
    from factoryctl.store.rows import SLOW_TIER

    assert set(SLOW_FIELDS) == SLOW_TIER
    assert ControllerSettings.model_fields["slow_interval_s"].default == DEFAULT_SLOW_INTERVAL_S


# -- through the real zipapp -------------------------------------------------------------------------------------


def _stream(agent: Any, samples: int, **request: Any) -> list[dict[str, Any]]:
    agent.send_line(json.dumps({"id": 7, "op": "stream", **request}))
    assert agent.read() == {"id": 7, "ok": True, "result": {"streaming": True}}
    out = [agent.read()["result"] for _ in range(samples)]
    assert agent.request("stop", stream=7)["result"] == {"stopped": True}
    return out


def test_a_stream_reuses_the_slow_tier_between_its_reads(start_agent):
    agent = start_agent()
    samples = _stream(agent, 16, interval_s=0.05, slow_interval_s=0.25)
    assert all(list(g) == list(GPU_FIELDS) for s in samples for g in s["gpus"])
    energy = [s["gpus"][0]["energy_j"] for s in samples]
    repeats = sum(a == b for a, b in itertools.pairwise(energy))
    assert repeats >= 8  # about four of every five samples reuse the last read
    assert energy[-1] > energy[0]  # and it is read again when due


def test_stream_rejects_a_bad_slow_interval(start_agent):
    agent = start_agent()
    for bad in ("5", 0, -1.0, 1e9, True):
        reply = agent.request("stream", interval_s=1.0, slow_interval_s=bad)
        assert reply["ok"] is False
        assert reply["error"]["kind"] == "usage"
        assert "slow_interval_s" in reply["error"]["message"]


def test_an_injected_fault_shows_on_the_next_streamed_sample(start_agent):
    agent = start_agent()
    agent.send_line(json.dumps({"id": 7, "op": "stream", "interval_s": 0.05, "slow_interval_s": 3600}))
    assert agent.read()["id"] == 7
    assert agent.read()["result"]["gpus"][3]["ecc_uncorrected"] == 0
    assert agent.request("inject", gpus=[3], fault="ecc")["ok"] is True
    # One sample taken before the injection may still be on its way; the one after it shows the error.
    ecc = [agent.read()["result"]["gpus"][3]["ecc_uncorrected"] for _ in range(2)]
    assert ecc[-1] == 1
