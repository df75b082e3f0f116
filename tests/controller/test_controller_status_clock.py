"""`controller status` judges freshness on the controller's clock, not on the clock of the nodes it samples.

It took MAX(sample time): with one node an hour ahead it called a controller SIGSTOPped for 30 s healthy, newest
sample 0.0 s old. The store now records when the newest sample was stored, on the writer's clock.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from factoryctl.controller import STATS_KEY
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store


def test_a_node_clock_ahead_does_not_make_a_silent_controller_look_fresh(cli: Any, lock_held: Any) -> None:
    config, state, lock = lock_held
    old = time.time() - 60
    os.utime(lock.path, (old, old))  # the controller started a minute ago
    store = Store(state / "factory.db")
    store.set_meta(STATS_KEY, json.dumps({"pid": os.getpid(), "written_at": old}))
    gpu = GpuSample(node="n1", index=0, uuid="GPU-0", name="H100", power_w=300.0)
    ahead = time.time() + 3600  # the node's clock is an hour ahead; the controller stored it 30 s ago
    store.write([NodeSample(node="n1", time=ahead, gpus=(gpu,))], stored_at=time.time() - 30)
    store.close()
    result = cli("--config", str(config), "controller", "status", "-o", "json")
    assert result.exit_code == 1, result.stdout
    doc = result.json()
    assert doc["healthy"] is False
    assert doc["newest_sample_age_s"] >= 30
    assert "has stored no sample since" in result.stderr
