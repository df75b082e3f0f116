"""A GPU index no GPU has (10**19, -1, 5000) is a malformed sample from its node, never a row of the store.

The fuzzing review's finding: a node reporting GPU index 10**19 (a lying agent, or nvidia-smi printing `1e19`) made
every store write fail with `OverflowError: Python int too large to convert to SQLite INTEGER`, 4 times a second,
for every node: the healthy one got no rows either, and the controller ended on it at SIGTERM. The end-to-end test runs
the real agent on a `transport: local` node whose `python` rewrites GPU 0's index in each sample (the review's
`evilpy`), next to a healthy node, into a real SQLite store.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.model.telemetry import MAX_GPU_INDEX, MAX_UNIX_TIME, GpuSample, NodeSample
from factoryctl.store.rows import encoding_problem
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.writer import StoreWriter
from factoryctl.transport.smi_query import QUERY, parse_query

T0 = 1_700_000_040.0
HUGE = 10**19  # past SQLite's integers (2**63 - 1)


@pytest.mark.parametrize("index", [HUGE, 2**63, MAX_GPU_INDEX + 1, -1, -(2**70)])
def test_an_index_no_gpu_has_is_refused_where_the_sample_enters(index: int) -> None:
    with pytest.raises(ValueError, match=f"a GPU entry's index {index} is not a GPU index"):
        GpuSample.from_json("n1", {"index": index, "power_w": 300.0})


def test_the_first_and_last_gpu_indexes_are_kept() -> None:
    assert GpuSample.from_json("n1", {"index": 0}).index == 0
    assert GpuSample.from_json("n1", {"index": MAX_GPU_INDEX}).index == MAX_GPU_INDEX


def smi_row(index: str) -> str:
    """One `--format=csv,noheader,nounits` row of nvidia-smi, its index column as given."""
    return ", ".join([index, "GPU-x", "H100", *["1"] * (len(QUERY) - 5), "0x0", "0"]) + "\n"


@pytest.mark.parametrize("printed", ["1e19", "-1", "1024", "2.5"])
def test_nvidia_smi_printing_an_index_no_gpu_has_is_output_that_cannot_be_read(printed: str) -> None:
    """The bridge turns this ValueError into the driver's error for the poll (an error sample), as other bad output."""
    assert parse_query(smi_row("3"))[0]["index"] == 3
    with pytest.raises(ValueError, match=f"GPU index {printed!r}"):
        parse_query(smi_row(printed))


def test_the_writer_drops_a_sample_whose_index_the_store_cannot_hold_and_stores_the_others(tmp_path: Path) -> None:
    """A GpuSample built in code skips `from_json`: the writer's fallback must find it, not retry it every tick."""
    clock = [T0 + 1]
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["good", "bad"])
    bad = NodeSample("bad", T0, gpus=(GpuSample("bad", HUGE, power_w=300.0),))
    for tick in range(2):
        writer.offer(NodeSample("good", T0 + tick, gpus=(GpuSample("good", 0, power_w=300.0),)))
        writer.offer(bad if tick == 0 else NodeSample("bad", T0 + tick, gpus=(GpuSample("bad", 0, power_w=1.0),)))
        assert writer.flush() == 2 - (tick == 0)
        clock[0] += 1
    assert writer.counters["unstorable"] == 1
    assert encoding_problem(bad) == f"GPU {HUGE}: its index is out of range"
    rows = list(store.export(["good", "bad"], 0, MAX_UNIX_TIME))
    assert sorted((r["node"], r["gpu"]) for r in rows) == [("bad", 0), ("good", 0), ("good", 0)]
    store.close()


def test_a_sample_the_writer_cannot_tell_is_unstorable_is_found_by_writing_each_alone(tmp_path: Path) -> None:
    """The writer's last resort, for a value `encoding_problem` does not check (a node name SQLite cannot encode:
    factory.yaml never lets one in, but the writer takes what it is given): the others are stored all the same."""
    clock, bad = [T0 + 1], "b\udcff"
    store = Store(tmp_path / "factory.db")
    writer = StoreWriter(store, interval_s=1.0, clock=lambda: clock[0])
    writer.set_nodes(["good", bad])
    assert encoding_problem(NodeSample(bad, T0, gpus=(GpuSample(bad, 0),))) is None
    for tick in range(2):
        writer.offer(NodeSample("good", T0 + tick, gpus=(GpuSample("good", 0, power_w=300.0),)))
        writer.offer(NodeSample(bad, T0 + tick, gpus=(GpuSample(bad, 0, power_w=1.0),)))
        assert writer.flush() == 1
        clock[0] += 1
    assert writer.counters["unstorable"] == 2
    assert [r["time"] for r in store.export(["good"], 0, MAX_UNIX_TIME)] == [T0, T0 + 1]
    store.close()


#: The node's `python`: the real agent, GPU 0's index in every sample rewritten to 10**19.
HUGE_INDEX_AGENT = f"""#!{sys.executable}
import json, subprocess, sys
agent = subprocess.Popen([sys.executable] + sys.argv[1:], stdout=subprocess.PIPE)
for line in agent.stdout:
    message = json.loads(line)
    result = message.get("result")
    if isinstance(result, dict) and isinstance(result.get("gpus"), list):
        for gpu in result["gpus"]:
            if isinstance(gpu, dict) and gpu.get("index") == 0:
                gpu["index"] = {HUGE}
        line = (json.dumps(message) + "\\n").encode()
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
"""


def test_a_node_reporting_a_huge_gpu_index_does_not_stop_the_others_being_stored(tmp_path: Path) -> None:
    evil = tmp_path / "huge-index-python"
    evil.write_text(HUGE_INDEX_AGENT)
    evil.chmod(0o755)
    path = write_factory(
        tmp_path,
        f"bad: {{transport: local, sim: h100-sxm, gpus: 2, python: {evil}}}\n"
        "  good: {transport: local, sim: h100-sxm, gpus: 2}",
        controller_interval_s=1,
    )
    controller = Controller(load_config(path))
    failures: list[BaseException] = []
    runner = threading.Thread(target=_run, args=(controller, failures), daemon=True)
    runner.start()
    database = tmp_path / "state" / "factory.db"
    try:
        wait_for(lambda: len(_stored(database, "good")) >= 4, timeout=30)
        wait_for(lambda: _state(database, "bad")[0] == "down", timeout=30)
    finally:
        controller.request_stop()
        runner.join(30)
    assert not runner.is_alive()
    assert failures == []  # it ended with OverflowError at its stop
    assert _stored(database, "bad") == []  # refused as malformed, never stored
    state, message = _state(database, "bad")
    assert state == "down"
    assert "the agent sent a malformed sample" in message
    assert f"a GPU entry's index {HUGE} is not a GPU index" in message


def _run(controller: Controller, failures: list[BaseException]) -> None:
    try:
        controller.run()
    except BaseException as exc:
        failures.append(exc)


def _stored(database: Path, node: str) -> list[dict[str, Any]]:
    """The node's stored rows (none while the controller has not made the store yet)."""
    try:
        store = Store(database, readonly=True)
    except StoreError:
        return []
    try:
        return list(store.export([node], 0, MAX_UNIX_TIME))
    finally:
        store.close()


def _state(database: Path, node: str) -> tuple[str, str]:
    """The node's stored state and its message ("" while none is stored)."""
    try:
        store = Store(database, readonly=True)
    except StoreError:
        return "", ""
    try:
        states = {state.node: state for state, _ in store.latest()}
    finally:
        store.close()
    state = states.get(node)
    return (state.state, state.message or "") if state is not None else ("", "")
