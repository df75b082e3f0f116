"""The node state machine and health events, as pure functions of what was seen and when."""

from __future__ import annotations

import random

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.telemetry.health import NodeHealth, gpu_events, missed_samples
from factoryctl.telemetry.links import Backoff


def test_missed_samples_allow_half_an_interval_of_jitter() -> None:
    assert missed_samples(100.0, 101.4, 1.0) == 0
    assert missed_samples(100.0, 101.6, 1.0) == 1
    assert missed_samples(100.0, 103.6, 1.0) == 3
    assert missed_samples(None, 0.0, 1.0) == 3


def test_up_degraded_down_after_three_missed_then_up_with_a_sample() -> None:
    health = NodeHealth("n1", 1.0)
    assert health.state == "down"
    assert health.seen(10.0).state == "up"  # type: ignore[union-attr]
    assert health.tick(11.2) is None
    change = health.tick(11.6)
    assert change is not None
    assert (change.state, change.message) == ("degraded", "1 sample missed.")
    assert health.tick(12.6) is None
    assert health.tick(13.6).state == "down"  # type: ignore[union-attr]
    assert not health.overdue(13.0)
    assert health.overdue(13.6)
    assert health.seen(14.0).state == "up"  # type: ignore[union-attr]


def test_connection_failure_degrades_at_once_and_keeps_the_reason() -> None:
    health = NodeHealth("n1", 1.0)
    health.seen(10.0)
    change = health.failed(10.5, "agent", "n1: the agent exited.")
    assert change is not None
    assert (change.state, change.error) == ("degraded", "agent")
    assert health.tick(10.6) is None  # time alone never brings a node back up
    assert health.tick(13.6).state == "down"  # type: ignore[union-attr]


def test_never_reached_node_stays_down_with_its_error_recorded_once_per_kind() -> None:
    """The first failure is recorded (readers said "not reached yet", kind agent, exit 1, for a refused node)."""
    health = NodeHealth("n1", 1.0)
    first = health.failed(1.0, "refused", "n1: connection refused.")
    assert first is not None
    assert (first.state, first.error, first.message) == ("down", "refused", "n1: connection refused.")
    assert (health.state, health.error) == ("down", "refused")
    assert health.failed(3.0, "refused", "n1: connection refused.") is None  # the same failure again: nothing
    other = health.failed(9.0, "timeout", "n1: no answer in 10 s.")
    assert other is not None
    assert other.error == "timeout"


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    backoff = Backoff(base_s=1.0, cap_s=30.0)
    for attempt, top in [(0, 1.0), (1, 2.0), (3, 8.0), (10, 30.0), (100, 30.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(20)]
        assert all(top / 2 <= d <= top for d in delays)
        assert len(set(delays)) > 1


def _node(t: float, **gpu: object) -> NodeSample:
    return NodeSample("n1", t, gpus=(GpuSample("n1", 0, **gpu),))  # type: ignore[arg-type]


def test_gpu_events_on_ecc_lost_gpu_and_thermal_slowdown() -> None:
    assert gpu_events(None, _node(1.0)) == []
    events = gpu_events(
        _node(1.0, ecc_uncorrected=0),
        _node(2.0, ecc_uncorrected=2, throttle_reasons=("HwThermalSlowdown",)),
    )
    assert [(e.kind, e.severity, e.gpu) for e in events] == [("ecc", "error", 0), ("thermal", "warning", 0)]
    lost = gpu_events(_node(1.0), _node(2.0, null_reasons={"power_w": "gpu_lost"}))
    assert [e.kind for e in lost] == ["gpu_lost"]


def _xid_sample(at: float, *xids: tuple[int, float]) -> NodeSample:
    from factoryctl.model.telemetry import XidEvent

    gpu = GpuSample("n1", 0, xid_events=tuple(XidEvent(code, t) for code, t in xids))
    return NodeSample("n1", at, gpus=(gpu,))


def test_each_xid_is_one_event_whatever_the_samples_that_repeat_it() -> None:
    from factoryctl.telemetry.health import carry_forward

    first = _xid_sample(10.0, (13, 9.5))
    assert [(e.kind, e.time, e.gpu, e.message) for e in gpu_events(None, first)] == [("xid", 9.5, 0, "n1/0: XID 13")]
    second = _xid_sample(11.0, (13, 9.5), (31, 10.5))
    assert [e.message for e in gpu_events(first, second)] == ["n1/0: XID 31"]
    assert gpu_events(second, second) == []
    restarted = _xid_sample(12.0, (48, 11.5))  # a new agent lists only what it saw
    assert [e.message for e in gpu_events(second, restarted)] == ["n1/0: XID 48"]
    kept = carry_forward(second, restarted)
    assert [x.xid for x in kept.gpus[0].xid_events] == [13, 31, 48]
    assert carry_forward(None, restarted) is restarted


def test_a_lost_gpu_keeps_its_uuid_and_name() -> None:
    from factoryctl.telemetry.health import carry_forward

    before = NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0, uuid="GPU-1", name="H100", power_w=1.0),))
    lost = GpuSample("n1", 0, null_reasons={"uuid": "gpu_lost", "name": "gpu_lost", "power_w": "gpu_lost"})
    kept = carry_forward(before, NodeSample("n1", 2.0, gpus=(lost,))).gpus[0]
    assert (kept.uuid, kept.name, kept.power_w) == ("GPU-1", "H100", None)
    assert kept.null_reasons == {"power_w": "gpu_lost"}


def test_a_gpu_hovering_at_its_slowdown_temperature_is_one_thermal_episode() -> None:
    """In and out of slowdown every few samples logged a new event each time (15 in two minutes for one GPU)."""
    from factoryctl.telemetry.health import THERMAL_COOL_S, ThermalEpisodes, gpu_events

    episodes = ThermalEpisodes()
    hot, cool = ("SwThermalSlowdown",), ()
    pattern = [cool, hot, hot, cool, hot, cool, cool, hot]  # a sample every 5 s
    samples = [
        NodeSample("n1", 1000.0 + 5 * i, gpus=(GpuSample("n1", 0, throttle_reasons=r),)) for i, r in enumerate(pattern)
    ]
    logged = []
    for before, after in zip([None, *samples[:-1]], samples, strict=True):
        logged += episodes.keep(gpu_events(before, after), after)
    assert [e.time for e in logged if e.kind == "thermal"] == [1005.0]  # gpu_events alone gives 3
    later = NodeSample("n1", samples[-1].time + THERMAL_COOL_S + 5, gpus=(GpuSample("n1", 0, throttle_reasons=cool),))
    again = NodeSample("n1", later.time + 5, gpus=(GpuSample("n1", 0, throttle_reasons=hot),))
    assert episodes.keep(gpu_events(later, again), again)[0].kind == "thermal"  # a new episode after a cool spell


def test_the_controllers_writer_logs_one_thermal_event_per_episode(tmp_path) -> None:
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.writer import StoreWriter

    t0 = 1_795_000_000.0
    clock = [t0]
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["n1"])
    for i, hot in enumerate([False, True, False, True, False, True]):
        clock[0] = t0 + i + 0.5
        reasons = ("SwThermalSlowdown",) if hot else ()
        writer.offer(NodeSample("n1", t0 + i, gpus=(GpuSample("n1", 0, power_w=300.0, throttle_reasons=reasons),)))
        writer.flush()
    thermal = [e for e in store.events(t0 - 1) if e.kind == "thermal"]
    store.close()
    assert len(thermal) == 1  # three dips into slowdown within seconds: one episode


def test_a_restarted_controller_keeps_a_lost_gpus_identity_and_logs_no_xid_twice(tmp_path) -> None:
    """After a restart the lost GPU's series had UUID "" and its XID was gone (the metric and alerts changed)."""
    from factoryctl.model.telemetry import XidEvent
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.writer import StoreWriter

    t0 = 1_795_000_000.0
    lost = {k: "gpu_lost" for k in ("uuid", "name", "power_w")}

    def run_controller(sample: NodeSample) -> None:
        store = Store(tmp_path / "factory.db")
        writer = StoreWriter(store, interval_s=1.0, clock=lambda: sample.time + 0.5)
        writer.set_nodes(["n1"])
        writer.offer(sample)
        writer.flush()
        store.close()

    xid = XidEvent(79, t0)
    run_controller(NodeSample("n1", t0, gpus=(GpuSample("n1", 0, uuid="GPU-abc", name="H100", xid_events=(xid,)),)))
    run_controller(NodeSample("n1", t0 + 60, gpus=(GpuSample("n1", 0, null_reasons=lost),)))  # a new agent
    store = Store(tmp_path / "factory.db", readonly=True)
    ((_, latest),) = store.latest()
    xids = [e for e in store.events(t0 - 1) if e.kind == "xid"]
    store.close()
    assert latest is not None
    assert (latest.gpus[0].uuid, latest.gpus[0].name) == ("GPU-abc", "H100")
    assert latest.gpus[0].xid_events == (xid,)
    assert len(xids) == 1


def test_a_gpu_seen_first_is_compared_with_a_healthy_one() -> None:
    """Faults present in a node's first sample are events (else a GPU dead before monitoring began never pages)."""
    first = NodeSample(
        "n1",
        5.0,
        gpus=(
            GpuSample("n1", 0, ecc_uncorrected=3),
            GpuSample("n1", 1, null_reasons={"power_w": "gpu_lost"}),
            GpuSample("n1", 2, ecc_uncorrected=0, throttle_reasons=("HwThermalSlowdown",)),
            GpuSample("n1", 3, ecc_uncorrected=0),
        ),
    )
    found = [(e.kind, e.gpu, e.time) for e in gpu_events(None, first)]
    assert found == [("ecc", 0, 5.0), ("gpu_lost", 1, 5.0), ("thermal", 2, 5.0)]
    grown = NodeSample("n1", 6.0, gpus=(*first.gpus, GpuSample("n1", 4, null_reasons={"uuid": "gpu_lost"})))
    assert [(e.kind, e.gpu) for e in gpu_events(first, grown)] == [("gpu_lost", 4)]
    assert gpu_events(first, first) == []


def test_a_state_event_names_its_node_once() -> None:
    from factoryctl.store.rows import NodeState
    from factoryctl.telemetry.health import state_event

    event = state_event(NodeState("g0001", "degraded", 5.0, 4.0, "timeout", "g0001: no sample for 11 s"))
    assert event.message == "g0001 is degraded: no sample for 11 s"
    assert state_event(NodeState("g1", "down", 5.0, None, "refused", "10.0.0.1:22 refused")).message == (
        "g1 is down: 10.0.0.1:22 refused"
    )
