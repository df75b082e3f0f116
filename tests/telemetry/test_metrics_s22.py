"""`metrics serve` never takes a counter back, answers 405 to methods it does not take, and dedupes throttle reasons.

A controller stalled (SIGSTOP, or a store write lock) let the exporter poll the nodes itself and serve newer values;
once it went on, its backlog of older samples made the store live again and was served as is:
`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION` went back by up to 1,370 J per GPU, a counter reset for Prometheus (whose
`increase()` then jumped by the whole counter). A real store under a held controller lock, the backlog a real sample
of a simulated node reached by the local transport, written by the store's own writer.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from factoryctl.cli.metrics import MetricsSource, NewestServed, metrics_handler
from factoryctl.cli.metrics_http import listen
from factoryctl.config import FactoryConfig, load_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.poll import sample_node
from factoryctl.telemetry.prometheus import render

ENERGY = re.compile(r'^DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION\{gpu="0".*Hostname="a1"\} (\d+)$', re.M)
POWER = re.compile(r'^DCGM_FI_DEV_POWER_USAGE\{gpu="0".*Hostname="a1"\} (\S+)$', re.M)


def energy_mj(text: str) -> int:
    found = ENERGY.search(text)
    assert found is not None, text
    return int(found.group(1))


@pytest.fixture
def stalled(tmp_path: Path) -> Iterator[FactoryConfig]:
    """a1 (a simulated H100) under a live controller whose last write is a minute old: stalled, so polled."""
    state = tmp_path / "state"
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: st\nstate_dir: {state}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  a1: {transport: local, sim: {profile: h100-sxm, gpus: 1, seed: 3}}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()
    try:
        config = load_config(path)
        before = sample_node(config.nodes["a1"], config, 30.0)
        store = Store(config.store_path)
        store.write([before], states=[_up(before)], stored_at=time.time() - 60)
        store.close()
        yield config
    finally:
        lock.release()


def _up(sample: NodeSample) -> NodeState:
    return NodeState(sample.node, "up", sample.time - 3600, sample.time)


def _store(config: FactoryConfig, sample: NodeSample) -> None:
    """The controller writing `sample` now: the store is live again."""
    store = Store(config.store_path)
    try:
        store.write([sample], states=[_up(sample)])
    finally:
        store.close()


def test_a_backlog_written_after_a_poll_does_not_take_the_counter_back(stalled: FactoryConfig) -> None:
    backlog = sample_node(stalled.nodes["a1"], stalled, 30.0)  # the stalled controller's, not yet written
    source = MetricsSource(stalled, 5.0, 30.0)
    polled = source.text(30.0)  # the store is stale: the exporter polls a1 itself, after the backlog was taken
    assert energy_mj(polled) > round(backlog.gpus[0].energy_j * 1000)  # the sim's counter went on meanwhile
    _store(stalled, backlog)  # the controller goes on: its backlog, older than the poll, makes the store live
    served = source.text(30.0)
    assert energy_mj(served) == energy_mj(polled), "the counter went back to the backlog's older value"
    assert POWER.findall(served) == POWER.findall(polled)  # the gauges of the newer sample too
    caught_up = sample_node(stalled.nodes["a1"], stalled, 30.0)
    _store(stalled, caught_up)  # past the poll: the store's samples are served again
    assert energy_mj(source.text(30.0)) == round(caught_up.gpus[0].energy_j * 1000) > energy_mj(polled)


def test_a_newer_stored_sample_with_its_older_slow_tier_does_not_take_the_counter_back(stalled: FactoryConfig) -> None:
    """A stored sample's energy is its agent's last slow-tier read, up to `slow_interval_s` older than the sample.

    After a poll (energy read then) the controller's next sample, newer, carried the energy its agent had read
    before the poll: the counter went back even though no sample was older.
    """
    slow_read = sample_node(stalled.nodes["a1"], stalled, 30.0)  # the controller's agent reads its slow tier
    source = MetricsSource(stalled, 5.0, 30.0)
    polled = source.text(30.0)
    fast = sample_node(stalled.nodes["a1"], stalled, 30.0)  # its next sample: fast fields now, energy as read before
    _store(stalled, replace(fast, gpus=(replace(fast.gpus[0], energy_j=slow_read.gpus[0].energy_j),)))
    served = source.text(30.0)
    assert energy_mj(served) == energy_mj(polled), "the counter went back to the slow tier's older read"
    assert POWER.findall(served) == [str(fast.gpus[0].power_w).removesuffix(".0")]  # the gauges: the newer sample's
    _store(stalled, later := sample_node(stalled.nodes["a1"], stalled, 30.0))  # its slow tier read again
    assert energy_mj(source.text(30.0)) == round(later.gpus[0].energy_j * 1000) > energy_mj(polled)


def test_a_lower_counter_is_served_once_held_back_for_the_hold() -> None:
    """A driver reload restarts the energy counter (NVML counts since it): a reset Prometheus must see, if late."""
    clock = [0.0]
    newest = NewestServed(lambda: clock[0])
    before = NodeSample("a1", 100.0, gpus=(GpuSample("a1", 0, uuid="GPU-a", energy_j=5000.0, power_w=300.0),))
    reloaded = NodeSample("a1", 101.0, gpus=(GpuSample("a1", 0, uuid="GPU-a", energy_j=3.0, power_w=310.0),))
    assert newest.served([before], 13.5) == [before]
    clock[0] = 1.0
    held = newest.served([reloaded], 13.5)[0]
    assert (held.time, held.gpus[0].power_w, held.gpus[0].energy_j) == (101.0, 310.0, 5000.0)
    clock[0] = 14.5
    assert newest.served([reloaded], 13.5)[0].gpus[0].energy_j == 5000.0
    clock[0] = 15.0
    assert newest.served([reloaded], 13.5) == [reloaded]
    swapped = NodeSample("a1", 102.0, gpus=(GpuSample("a1", 0, uuid="GPU-b", energy_j=1.0),))
    assert newest.served([swapped], 13.5) == [swapped]  # another board: a series of its own


def test_a_node_down_is_served_down_after_a_newer_sample() -> None:
    newest = NewestServed(lambda: 0.0)
    up = NodeSample("a1", 100.0, gpus=(GpuSample("a1", 0, energy_j=5.0),))
    down = NodeSample("a1", 90.0, state="down", error="timeout", message="3 samples missed")
    assert newest.served([up], 10.0) == [up]
    assert newest.served([down], 10.0) == [down]  # no value goes back: a down node shows none
    older = replace(up, time=95.0)
    assert newest.served([older], 10.0) == [up]  # still not the older values once up again


def test_an_older_sample_is_served_once_the_store_stayed_behind_for_the_hold() -> None:
    """A node whose clock was set back must not be frozen for ever: after `hold_s` its samples are served."""
    clock = [0.0]
    newest = NewestServed(lambda: clock[0])
    kept = NodeSample("a1", 1000.0)
    set_back = NodeSample("a1", 400.0)
    assert newest.served([kept], 8.0) == [kept]
    clock[0] = 5.0
    assert newest.served([set_back], 8.0) == [kept]  # held from here
    clock[0] = 13.0
    assert newest.served([set_back], 8.0) == [kept]
    clock[0] = 13.5
    assert newest.served([set_back], 8.0) == [set_back]
    assert newest.served([replace(set_back, time=401.0)], 8.0)[0].time == 401.0  # and taken as the newest


def test_duplicate_throttle_reasons_are_one_series() -> None:
    gpu = GpuSample("n1", 0, uuid="GPU-a", throttle_reasons=("SwPowerCap", "HwSlowdown", "SwPowerCap"))
    lines = [line for line in render([NodeSample("n1", 1.0, gpus=(gpu,))]).splitlines() if "reason=" in line]
    assert [re.sub(r".*reason=", "", line) for line in lines] == ['"SwPowerCap"} 1', '"HwSlowdown"} 1']


class _Fixed:
    def text(self, wait_s: float = 5.0) -> str:
        return "factoryctl_node_up 1\n"


@pytest.fixture
def port() -> Iterator[int]:
    server = listen("127.0.0.1", 0, metrics_handler(_Fixed()))  # type: ignore[arg-type]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("path", ["/metrics", "/"])
def test_other_methods_get_405_with_allow(port: int, method: str, path: str) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        body = b"x" * 5000 if method in ("POST", "PUT", "PATCH") else None
        connection.request(method, path, body=body)
        response = connection.getresponse()
        assert (response.status, response.reason) == (405, "Method Not Allowed")
        assert response.getheader("Allow") == "GET, HEAD"
        assert response.read()
    finally:
        connection.close()


def test_other_methods_on_an_unknown_path_get_404(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/nowhere", body=b"{}")
        assert connection.getresponse().status == 404
    finally:
        connection.close()
