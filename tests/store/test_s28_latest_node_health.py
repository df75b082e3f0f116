"""`node_health`, the scheduling pass's read of the nodes, judges every node as `latest()` and `node_healthy` do.

It parses a stored sample only when its text may say the node is unhealthy, so each test compares both readers on a
real store: samples the writer stored (healthy, ECC errors, a lost GPU, an agent error, down, never seen) and texts
written into `node_latest` by other means (an older factoryctl, a hand edit), where a quick look could be fooled.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from factoryctl.config import load_config
from factoryctl.jobs.cluster import cluster_view
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.nodes import node_healthy
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0


def _gpu(node: str, index: int, **wire: Any) -> GpuSample:
    return GpuSample.from_json(node, {"index": index, "uuid": f"GPU-{node}-{index}", "power_w": 70.0,
                                      "ecc_uncorrected": 0, **wire})  # fmt: skip


def _fleet(store: Store) -> None:
    """One node of each kind the collector leaves (it stores no sample of a node it found down)."""
    odd = {
        "ecc": (_gpu("ecc", 3, ecc_uncorrected=2),),
        "lost": (_gpu("lost", 3, power_w=None, null_reasons={"power_w": "gpu_lost"}),),
        "no-ecc": (_gpu("no-ecc", 3, ecc_uncorrected=None, null_reasons={"ecc_uncorrected": "not_supported"}),),
    }
    names = ["ok", "ecc", "lost", "no-ecc", "erred", "down"]
    samples = []
    for name in names:
        gpus = tuple(_gpu(name, i) for i in range(3)) + odd.get(name, (_gpu(name, 3),))
        error = "nvml" if name == "erred" else None
        samples.append(NodeSample(name, T0, state="degraded" if error else "up", gpus=gpus, error=error, message=error))
    states = [NodeState(n, "up", T0, T0) for n in [*names, "never"]]
    store.write(samples, [True] * len(samples), states)
    store.write(states=[NodeState("down", "down", T0 + 1, T0, "unreachable", "no route to host")])


def _judged(store: Store) -> list[tuple[NodeState, bool]]:
    return [(state, node_healthy(state, sample)) for state, sample in store.latest()]


def test_every_kind_of_node_is_judged_as_from_its_parsed_sample(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    _fleet(store)
    assert store.node_health() == _judged(store)
    assert {state.node: healthy for state, healthy in store.node_health()} == {
        "ok": True, "ecc": False, "lost": False, "no-ecc": True, "erred": False, "down": False, "never": True,
    }  # fmt: skip
    store.close()


#: Stored texts no writer of this factoryctl makes, each with the health `latest()` then `node_healthy` gives it.
GOOD = {"node": "n", "time": T0, "state": "up", "error": None, "gpus": [{"index": 0, "ecc_uncorrected": 0}]}
TEXTS = {
    "spaced error": ('{"node": "n", "time": 1700000040.0, "error" : "nvml", "gpus": []}', False),
    "spaced null error": ('{"node": "n", "time": 1700000040.0, "error" : null , "gpus": []}', True),
    "escaped error key": ('{"node":"n","time":1700000040.0,"\\u0065rror":"nvml"}', False),
    "escaped gpu_lost": ('{"node":"n","time":1.7e9,"gpus":[{"index":0,"null_reasons":{"x":"gpu\\u005flost"}}]}', False),
    "state down": (json.dumps({**GOOD, "state": "down"}), False),
    "state down, spaced": ('{"node": "n", "time": 1.7e9, "state" : "down"}', False),
    "escaped down": ('{"node":"n","time":1700000040.0,"state":"d\\u006fwn"}', False),
    "ecc as a float": (json.dumps({**GOOD, "gpus": [{"index": 0, "ecc_uncorrected": 2.0}]}), False),
    "ecc 0.5e1, which is 5": ('{"node":"n","time":1.7e9,"gpus":[{"index":0,"ecc_uncorrected":0.5e1}]}', False),
    "ecc 0.0": (json.dumps({**GOOD, "gpus": [{"index": 0, "ecc_uncorrected": 0.0}]}), True),
    "ecc as text": (json.dumps({**GOOD, "gpus": [{"index": 0, "ecc_uncorrected": "5"}]}), True),
    "ecc below 0": (json.dumps({**GOOD, "gpus": [{"index": 0, "ecc_uncorrected": -1}]}), True),
    "ecc twice, the last 3": (
        '{"node":"n","time":1.7e9,"gpus":[{"index":0,"ecc_uncorrected":0,"ecc_uncorrected":3}]}',
        False,
    ),
    "error 0": (json.dumps({**GOOD, "error": 0}), False),
    "unhealthy, time past 9999": (json.dumps({**GOOD, "time": 1e13, "error": "nvml"}), True),
    "unhealthy, a time of 400 digits": (f'{{"node":"n","time":1{"0" * 400},"error":"nvml"}}', True),
    "unhealthy, nested too deep": (f'{{"node":"n","time":1.7e9,"error":"x","deep":{"[" * 10**5}{"]" * 10**5}}}', True),
    "unhealthy, a GPU with no index": (json.dumps({**GOOD, "gpus": [{"ecc_uncorrected": 3}]}), True),
    "not JSON": ("{not json", True),
    "a JSON list": ('["down", "gpu_lost"]', True),
    "unhealthy, text not UTF-8": (
        json.dumps({**GOOD, "error": "nvml"}).replace('"n"', '"n\xff"').encode("latin-1"),
        True,
    ),
    "healthy, text not UTF-8": (json.dumps(GOOD).replace('"n"', '"n\xff"').encode("latin-1"), True),
}


@pytest.mark.parametrize(("text", "healthy"), list(TEXTS.values()), ids=list(TEXTS))
def test_a_sample_written_by_other_means_is_judged_as_latest_reads_it(
    tmp_path: Path, text: str | bytes, healthy: bool
) -> None:
    """`text` is stored as TEXT (bytes as they are: read back with each byte that is not UTF-8 as `\\xff`)."""
    store = Store(tmp_path / "factory.db")
    store.write([NodeSample("n", T0, gpus=(_gpu("n", 0),))], [True], [NodeState("n", "up", T0, T0)])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE node_latest SET sample = CAST(? AS TEXT)", (text,))
    db.close()
    assert store.node_health() == _judged(store)
    assert [healthy for _, healthy in store.node_health()] == [healthy]
    store.close()


def test_a_sample_stored_as_a_blob_is_judged_as_latest_reads_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    store.write([NodeSample("n", T0, gpus=(_gpu("n", 0),))], [True], [NodeState("n", "up", T0, T0)])
    with sqlite3.connect(store.path) as db:
        db.execute("UPDATE node_latest SET sample = ?", (json.dumps({**GOOD, "error": "nvml"}).encode(),))
    db.close()
    assert store.node_health() == _judged(store) == [(store.node_health()[0][0], False)]
    store.close()


def test_the_scheduler_sees_the_same_cluster_from_either_reader(tmp_path: Path) -> None:
    names = ["ok", "ecc", "lost", "no-ecc", "erred", "down", "never", "unknown"]
    lines = [f"  {name}: {{rack: r1, gpus: 4}}" for name in names]
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: t\nstate_dir: {tmp_path / 'state'}\nnodes:\n" + "\n".join(lines) + "\n")
    config = load_config(path)
    store = Store(config.store_path)
    _fleet(store)
    store.set_drained(["ecc", "ok"], True, "maintenance", "ops")
    read = cluster_view(config, store)
    assert read == cluster_view(config, store, store.latest())
    assert {n.name: (n.state, n.healthy, n.drained) for n in read.nodes} == {
        "ok": ("up", True, True), "ecc": ("up", False, True), "lost": ("up", False, False),
        "no-ecc": ("up", True, False), "erred": ("up", False, False),
        "down": ("down", False, False), "never": ("up", True, False), "unknown": ("down", True, False),
    }  # fmt: skip
    store.close()
