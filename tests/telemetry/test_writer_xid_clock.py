"""An XID raised on a node whose clock is off is stored at the controller's time, as the sample it came in.

The writer re-stamped a skewed node's samples but left the XIDs in them on the node's clock: a node a day ahead had
its XID stored a day in the future, one a day behind had it a day back, out of `factoryctl events` (24 h by default).
Clocks are injected (tests/clocks.py) and the store is a real SQLite file.
"""

from __future__ import annotations

import pytest
from clocks import Clocks, writer_for

from factoryctl.model.telemetry import GpuSample, NodeSample, XidEvent
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.node_clock import CLOCK_REPORT_AFTER_S
from factoryctl.telemetry.writer import StoreWriter

DAY = 86400.0


def _offer(writer: StoreWriter, clocks: Clocks, off: float, xids: tuple[XidEvent, ...] = ()) -> None:
    """One sample of `skewed` stamped `off` seconds from the controller's clock (a little late), then a tick."""
    gpu = GpuSample("skewed", 0, uuid="GPU-s", name="H100", power_w=300.0, xid_events=xids)
    writer.offer(NodeSample("skewed", clocks.wall + off - 0.05, gpus=(gpu,)))
    writer.flush()
    clocks.tick(1.0)


@pytest.mark.parametrize("off", [DAY, -DAY])
def test_an_xid_of_a_node_a_day_off_is_stored_at_the_controllers_time(store: Store, clocks: Clocks, off: float) -> None:
    writer = writer_for(store, clocks, ["skewed"])
    for _ in range(5):  # past the 2 s a node behind is not trusted for
        _offer(writer, clocks, off)
    raised = XidEvent(13, clocks.wall + off - 0.3)  # on the node's clock, just before its sample
    _offer(writer, clocks, off, (raised,))
    ((xid,),) = [[e for e in store.events(0) if e.kind == "xid"]]
    ((_, newest),) = store.latest()
    assert newest is not None
    assert abs(xid.time - (clocks.wall - 1.3)) < 0.1  # the controller's time, not a day off
    assert newest.time - xid.time == pytest.approx(0.25, abs=0.002)  # as far before its sample as on the node
    assert newest.gpus[0].xid_events == (XidEvent(13, xid.time),)  # the sample shows it at the same time
    assert [e.kind for e in store.events(clocks.wall - DAY + 60)] == ["node_up", "xid"]  # `events`' default 24 h


def test_an_xid_still_listed_is_one_event_while_the_estimate_moves_and_after_the_clock_is_set_right(
    store: Store, clocks: Clocks
) -> None:
    """The agent lists its recent XIDs in every sample: moved afresh by each new estimate, it was new each time."""
    writer = writer_for(store, clocks, ["skewed"])
    raised = XidEvent(48, clocks.wall + DAY)
    for delay in (0.5, 0.3, 0.1, 0.05, 0.01):  # less delay each time: the offset estimate grows a little
        gpu = GpuSample("skewed", 0, uuid="GPU-s", power_w=300.0, xid_events=(raised,))
        writer.offer(NodeSample("skewed", clocks.wall + DAY - delay, gpus=(gpu,)))
        writer.flush()
        clocks.tick(1.0)
    for _ in range(int(CLOCK_REPORT_AFTER_S) + 15):  # NTP sets the node right; the agent still lists the XID
        _offer(writer, clocks, 0.0, (raised,))
    xids = [e for e in store.events(0) if e.kind == "xid"]
    assert len(xids) == 1
    assert abs(xids[0].time - (raised.time - DAY)) < 1.0
    ((_, newest),) = store.latest()
    assert newest is not None
    assert newest.time == clocks.wall - 1.05  # its own time again: in step
    assert newest.gpus[0].xid_events == (XidEvent(48, xids[0].time),)


def test_a_node_in_step_keeps_its_xids_times(store: Store, clocks: Clocks) -> None:
    writer = writer_for(store, clocks, ["skewed"])
    raised = XidEvent(79, clocks.wall - 2.0)
    _offer(writer, clocks, 0.0, (raised,))
    _offer(writer, clocks, 0.0, (raised,))
    assert [(e.kind, e.time) for e in store.events(0) if e.kind == "xid"] == [("xid", raised.time)]
