r"""A lone surrogate in a node's text (JSON's `"\udcff"`) is written as text where it enters, and cannot stop the store.

The review's finding: JSON from an agent may carry `\udcff`, which decodes to a lone surrogate that no UTF-8 writer
can encode. One node's GPU name holding it failed the store writer's every write, for every node, and the metrics
page; an error quoting it lost the tick's state changes and events of every other node. Now `escape_controls`, the
one cleaning of node text, writes it `\xff` (U+FFFD for a surrogate that is no byte), and the writer drops a sample
built in code that still holds one, makes the tick's texts storable, and keeps its changes and events for the next
write when a write fails unexpectedly.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from test_hostile_node_values import rewriting_python

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import GpuSample, NodeSample, escape_controls
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.prometheus import render
from factoryctl.telemetry.writer import StoreWriter
from factoryctl.transport.node_text import node_said

T0 = 1_700_000_040.0
#: A GPU entry as an agent's JSON line carries it, the name's last byte not UTF-8: `"NVIDIA \udcff"`.
WIRE = '{"index": 0, "uuid": "GPU-1\\udcff", "name": "NVIDIA \\udcff", "power_w": 100.0}'


def _wire_gpu(node: str, **values: Any) -> GpuSample:
    return GpuSample.from_json(node, {**json.loads(WIRE), **values})


def _writer(tmp_path: Path, *nodes: str) -> tuple[Store, StoreWriter]:
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: T0 + 1)
    writer.set_nodes(nodes)
    return store, writer


def _stored_names(path: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute("SELECT uuid, name FROM gpu ORDER BY uuid"))
    finally:
        db.close()


# ---------------------------------------------------------------------------------------------------- the wire


def test_a_lone_surrogate_is_written_as_the_byte_it_stands_for() -> None:
    assert escape_controls("NVIDIA \udcff") == "NVIDIA \\xff"
    assert escape_controls("half a pair \ud83d") == "half a pair \ufffd"  # no byte: the replacement character
    assert escape_controls("\x1b[2J\udc80") == "\\x1b[2J\\x80"  # with the controls, in one pass
    once = escape_controls("a\udcffb\ud800")
    assert escape_controls(once) == once
    assert escape_controls("NVIDIA H100 · Zürich 🚀") == "NVIDIA H100 · Zürich 🚀"  # a real pair is kept


def test_every_text_of_a_gpu_from_the_wire_encodes_as_utf8() -> None:
    gpu = _wire_gpu(
        "n1",
        throttle_reasons=["sw_power_cap\udcfe"],
        processes=[{"pid": 7, "name": "python\udcff"}],
        power_w=None,
        null_reasons={"power_w\udcff": "not_supported\udcff"},
    )
    texts = [
        gpu.uuid,
        gpu.name,
        *gpu.throttle_reasons,
        gpu.processes[0].name,
        *gpu.null_reasons,
        *gpu.null_reasons.values(),
    ]
    for text in texts:
        assert text is not None
        text.encode("utf-8")  # no UnicodeEncodeError
    assert (gpu.uuid, gpu.name) == ("GPU-1\\xff", "NVIDIA \\xff")


def test_the_texts_of_a_node_sample_and_of_a_node_error_encode_as_utf8() -> None:
    sample = NodeSample("n1", T0, agent_version="1.0\udcff", backend="sim\udcff", message="died: \udcff")
    assert (sample.agent_version, sample.backend, sample.message) == ("1.0\\xff", "sim\\xff", "died: \\xff")
    assert node_said("bad \udcff byte") == "bad \\xff byte"


# ---------------------------------------------------------------------------------------------------- the store


def test_a_node_sending_a_lone_surrogate_does_not_stop_the_store(tmp_path: Path) -> None:
    """The review's t2.py: every flush raised UnicodeEncodeError and no node's row was ever stored."""
    store, writer = _writer(tmp_path, "n1", "n2")
    writer.offer(NodeSample("n1", T0, gpus=(_wire_gpu("n1"),)))
    writer.offer(NodeSample("n2", T0, gpus=(_wire_gpu("n2", uuid="GPU-2", name="ok"),)))
    assert writer.flush() == 2
    store.close()
    assert _stored_names(tmp_path / "factory.db") == [("GPU-1\\xff", "NVIDIA \\xff"), ("GPU-2", "ok")]


@pytest.mark.parametrize("field", ["name", "uuid", "throttle_reasons"])
def test_a_sample_built_in_code_with_a_lone_surrogate_is_dropped_alone(tmp_path: Path, field: str) -> None:
    """Defence in depth: a text that skipped `from_json` is found by `encoding_problem`, as a NaN is."""
    store, writer = _writer(tmp_path, "n1", "n2")
    bad = ("x\udcff",) if field == "throttle_reasons" else "x\udcff"
    writer.offer(NodeSample("n1", T0, gpus=(GpuSample("n1", 0, **{"uuid": "GPU-1", field: bad}),)))
    writer.offer(NodeSample("n2", T0, gpus=(GpuSample("n2", 0, uuid="GPU-2", name="ok", power_w=5.0),)))
    assert writer.flush() == 1
    assert writer.counters["unstorable"] == 1
    assert writer.flush() == 0  # the next tick writes: the bad sample is not held in the buffer
    assert writer.store_error is None
    store.close()
    assert _stored_names(tmp_path / "factory.db") == [("GPU-2", "ok")]


def test_an_error_quoting_a_lone_surrogate_loses_no_other_nodes_event(tmp_path: Path) -> None:
    """The review's t.py: an error message that skipped `node_said` lost n2's unrelated `down` event."""
    store, writer = _writer(tmp_path, "n1", "n2")
    writer.link_failed("n1", NodeError("n1", "agent", "the agent said: bad \udcff byte"))
    writer.link_failed("n2", NodeError("n2", "refused", "connection refused"))
    writer.flush()
    events = {e.node: e.message for e in store.events(0)}
    assert events == {"n1": "n1 is down: the agent said: bad \\xff byte", "n2": "n2 is down: connection refused"}
    assert {s.node: s.message for s, _ in store.latest()}["n1"] == "the agent said: bad \\xff byte"
    store.close()


def test_a_write_failing_unexpectedly_keeps_the_ticks_changes_and_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were taken off the queue before the write and never put back: lost for good."""
    store, writer = _writer(tmp_path, "n1")
    real_write, calls = store.write, []

    def write(*args: Any, **kwargs: Any) -> int:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write", write)
    writer.link_failed("n1", NodeError("n1", "refused", "connection refused"))
    with pytest.raises(RuntimeError, match="a bug"):
        writer.flush()
    writer.flush()
    assert [(e.node, e.kind) for e in store.events(0)] == [("n1", "node_down")]
    assert {s.node: s.state for s, _ in store.latest()} == {"n1": "down"}
    store.close()


def test_changes_and_events_that_fail_twice_are_dropped_and_the_store_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kept for ever, what cannot be written would fail every later write, every node's with it."""
    store, writer = _writer(tmp_path, "n1", "n2")
    real_write = store.write

    def write(*args: Any, **kwargs: Any) -> int:
        if any("poison" in e.message for e in args[3]):
            raise RuntimeError("an event no store can hold")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(store, "write", write)
    writer.link_failed("n1", NodeError("n1", "refused", "poison"))
    for _ in range(2):
        with pytest.raises(RuntimeError):
            writer.flush()
    writer.link_failed("n2", NodeError("n2", "refused", "connection refused"))
    writer.flush()
    assert [(e.node, e.kind) for e in store.events(0)] == [("n2", "node_down")]  # the next tick's: written
    store.close()


# ---------------------------------------------------------------------------------------------------- the outputs


def test_the_metrics_page_of_a_node_sending_a_lone_surrogate_encodes() -> None:
    """The review's t3.py: the page failed to encode, so /metrics answered 503 for every node."""
    samples = [NodeSample("n1", T0, gpus=(_wire_gpu("n1"),)), NodeSample("n2", T0, gpus=(_wire_gpu("n2", name="ok"),))]
    page = render(samples, set()).encode("utf-8")
    assert b'modelName="NVIDIA \\\\xff"' in page  # its backslash escaped, as a label value's must be


def test_gpus_shows_a_name_holding_a_lone_surrogate(tmp_path: Path, cli: Any) -> None:
    body = "    line = line.replace(b'NVIDIA H100 80GB HBM3', b'NVIDIA \\\\udcff')\n"
    evil = rewriting_python(tmp_path, body)
    path = write_factory(tmp_path, f"l1: {{transport: local, sim: h100-sxm, gpus: 1, python: {evil}}}")
    doc = cli("--config", str(path), "gpus", "-o", "json")
    assert doc.exit_code == 0, doc.stderr
    assert doc.json()["items"][0]["name"] == "NVIDIA \\xff"  # type: ignore[index]
    table = cli("--config", str(path), "gpus")
    assert table.exit_code == 0, table.stderr
    assert "NVIDIA \\xff" in table.stdout
