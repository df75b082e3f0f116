"""A host reading no host can show, and a GPU process pid no kernel gives, are unknown where they enter the model.

An agent reporting `host: {"cpu_pct": 1e308, "load_1m": -5, "memory_used_mib": 1e300}` had each kept as it was: into
the store's node rows and the dashboard's node summary (`host CPU 1000...000%`, 309 digits). A GPU process with pid
2**70 was kept too, in `gpus -o json` and the dashboard's process list. The GPU readings were bounded already
(tests/model/test_implausible_readings.py); the host's now use the same bounds table, and a bad pid drops its entry
as a missing pid does.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from factoryctl.model.telemetry import MAX_LOAD, MAX_MEMORY_MIB, MAX_PID, GpuSample, HostSample, NodeSample
from factoryctl.store.rows import sample_from_json

REAL_HOST = {"cpu_pct": 37.5, "load_1m": 3.25, "memory_used_mib": 1479.3, "memory_total_mib": 24105}


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("cpu_pct", 1e308),
        ("cpu_pct", 100.5),
        ("cpu_pct", -1),
        ("load_1m", -5),
        ("load_1m", 1e300),
        ("load_1m", MAX_LOAD + 1),
        ("memory_used_mib", 1e300),
        ("memory_used_mib", -1),
        ("memory_total_mib", int("9" * 30)),
        ("memory_total_mib", MAX_MEMORY_MIB * 2),
        ("cpu_pct", math.nan),
        ("load_1m", math.inf),
        ("cpu_pct", "50"),
        ("load_1m", True),
    ],
)
def test_a_host_reading_no_host_can_show_is_unknown_and_the_others_are_kept(key: str, bad: Any) -> None:
    host = HostSample.from_json({**REAL_HOST, key: bad})
    assert getattr(host, key) is None
    assert {k: getattr(host, k) for k in REAL_HOST if k != key} == {k: v for k, v in REAL_HOST.items() if k != key}


def test_host_readings_at_their_bounds_pass_unchanged_and_used_may_exceed_total() -> None:
    edges = {"cpu_pct": 100, "load_1m": MAX_LOAD, "memory_used_mib": MAX_MEMORY_MIB, "memory_total_mib": 0}
    assert HostSample.from_json(edges) == HostSample(**edges)
    assert vars(HostSample.from_json(edges)) == edges
    zeros = {"cpu_pct": 0.0, "load_1m": 0, "memory_used_mib": 0.0, "memory_total_mib": 0}
    assert vars(HostSample.from_json({**zeros, "swap_mib": 5})) == zeros  # unknown keys ignored


def test_the_review_agents_host_keeps_only_its_real_total() -> None:
    host = HostSample.from_json({"cpu_pct": 1e308, "load_1m": -5, "memory_used_mib": 1e300, "memory_total_mib": 1024})
    assert host == HostSample(memory_total_mib=1024)


@pytest.mark.parametrize("bad", ["big", [1, 2], 7])
def test_a_host_that_is_not_an_object_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="its host is not an object"):
        HostSample.from_json(bad)


def test_a_host_built_in_code_is_checked_as_the_wire_one_is() -> None:
    assert HostSample(cpu_pct=1e308, load_1m=-5.0, memory_used_mib=12.0) == HostSample(memory_used_mib=12.0)


def test_a_node_row_stored_before_the_check_is_read_back_checked() -> None:
    """The store's read path (`sample_from_json`, `HostSample(**host)`): the exact row a controller stored before."""
    row = (
        '{"node":"e1","time":1795475020.5525942,"state":"up","agent_version":"0.1.0","backend":"nvml","error":null,'
        '"message":null,"host":{"cpu_pct":1e+308,"memory_used_mib":1e+300,"memory_total_mib":1024,"load_1m":-5},'
        '"gpus":[{"index":0,"uuid":"GPU-1","name":"H100","power_w":300,"null_reasons":{},"processes":'
        '[{"pid":1180591620717411303424,"used_memory_mib":100,"name":"big"},{"pid":1234,"used_memory_mib":null,'
        '"name":"ok"}]}]}'
    )
    sample = sample_from_json(row)
    assert sample.host == HostSample(memory_total_mib=1024)
    assert [p.pid for p in sample.gpus[0].processes] == [1234]


@pytest.mark.parametrize("bad", [2**70, 2**63, MAX_PID + 1, -1, -(2**70), 12.0, True, "12", None])
def test_a_gpu_process_whose_pid_is_no_pid_is_left_out(bad: object) -> None:
    procs = [{"pid": bad, "used_memory_mib": 100, "name": "bad"}, {"pid": 1234, "used_memory_mib": 12, "name": "ok"}]
    gpu = GpuSample.from_json("n1", {"index": 0, "processes": procs})
    assert [(p.pid, p.name) for p in gpu.processes] == [(1234, "ok")]
    assert gpu.null_reasons == {}


def test_the_first_and_last_pids_are_kept() -> None:
    procs = [{"pid": 0}, {"pid": MAX_PID}, {"pid": 2**22}]
    assert [p.pid for p in GpuSample.from_json("n1", {"index": 0, "processes": procs}).processes] == [0, MAX_PID, 2**22]


def test_node_summary_says_an_unknown_load_is_unknown() -> None:
    """A valid CPU share with no load read (or one thrown out) shows `load —`, not a made-up `load 0.0`."""
    from factoryctl.tui.widgets.node_summary import node_summary_text

    base = NodeSample(node="n1", time=1.0, state="up", gpus=(), host=HostSample(cpu_pct=12.0, load_1m=-5))
    assert "host CPU 12% load —" in node_summary_text(base, "n1", None, False).plain
    known = dataclasses.replace(base, host=HostSample(cpu_pct=12.0, load_1m=3.25))
    assert "host CPU 12% load 3.2" in node_summary_text(known, "n1", None, False).plain
