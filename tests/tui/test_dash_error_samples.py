"""The dashboard judges a node whose agent sends error samples as the controller does, not as a broken link.

An agent that cannot read its GPUs sends `ok: false` samples, which its link reports as failures with the agent's
reason. The dashboard showed such a node `down` at the first one, so one failed poll was a node_down and node_up
pair, while the controller keeps a node with a recent good sample `up`, then silence makes it `degraded` with the
reason and `down` with that reason after three missed samples. A broken link (the agent gone) degrades it at once,
with the link's reason, as the controller's does (both are `NodeHealth`). The agent here is a script on the real local transport that streams good samples, or error samples while a
file exists, and exits when another one does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_for

from factoryctl.config import parse_config
from factoryctl.errors import NodeError
from factoryctl.live.services import DashboardEvent
from factoryctl.live.services_polled import PolledServices
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.health import NodeHealth

REASON = "nvidia-smi failed: the GPU is busy"
WAIT_S = 30.0  # for what must come: generous, never a measure of how fast

SCRIPTED_AGENT = """\
#!{python}
import json, os, sys, threading, time
lock = threading.Lock()
GPU = {{"index": 0, "uuid": "GPU-0", "name": "NVIDIA H100 80GB HBM3", "power_w": 312.5, "power_limit_w": 700.0}}
def send(message):
    with lock:
        sys.stdout.write(json.dumps(message) + "\\n")
        sys.stdout.flush()
def stream(rid, interval):
    said, last = None, 0.0
    while True:
        if os.path.exists({exits!r}):
            os._exit(0)
        failing = os.path.exists({failing!r})
        if failing != said or time.monotonic() - last >= interval:
            said, last = failing, time.monotonic()
            if failing:
                send({{"id": rid, "type": "sample", "ok": False, "error": {{"kind": "driver", "message": {reason!r}}}}})
            else:
                send({{"id": rid, "type": "sample", "result": {{"time": time.time(), "backend": "sim", "gpus": [GPU]}}}})
        time.sleep(0.02)
send({{"type": "hello", "agent_version": "scripted", "protocol": 1, "backend": "sim"}})
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "stream":
        send({{"id": request["id"], "ok": True, "result": {{"streaming": True}}}})
        threading.Thread(target=stream, args=(request["id"], request["interval_s"]), daemon=True).start()
    elif request["op"] == "shutdown":
        send({{"id": request["id"], "ok": True, "result": {{"bye": True}}}})
        break
    else:
        send({{"id": request["id"], "ok": True, "result": {{}}}})
"""


class Agent:
    """The scripted agent's switches: `failing` (error samples while on) and `exit()`."""

    def __init__(self, tmp_path: Path) -> None:
        self.failing_file, self.exit_file = tmp_path / "failing", tmp_path / "exit"
        self.python = tmp_path / "scripted-python"
        self.python.write_text(
            SCRIPTED_AGENT.format(
                python=sys.executable, failing=str(self.failing_file), exits=str(self.exit_file), reason=REASON
            )
        )
        self.python.chmod(0o755)

    def failing(self, on: bool) -> None:
        if on:
            self.failing_file.touch()
        else:
            self.failing_file.unlink()

    def exit(self) -> None:
        self.exit_file.touch()


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[tuple[Agent, list[PolledServices]]]:
    agent, opened = Agent(tmp_path), []
    yield agent, opened
    for services in opened:
        services.close()


def services_for(tmp_path: Path, agent: Agent, opened: list[PolledServices], interval_s: float) -> PolledServices:
    yaml = f"name: s\ncontroller: {{interval_s: {interval_s}}}\nnodes:\n  n1: {{transport: local, python: {agent.python}}}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False)
    opened.append(services)
    return services


def shown(services: PolledServices) -> NodeSample:
    (node,) = services.snapshot().nodes
    return node


def events(services: PolledServices) -> list[DashboardEvent]:
    """n1's events as recorded so far (read without judging, unlike a snapshot)."""
    return [e for e in list(services._events) if e.node == "n1"]


def test_error_samples_degrade_the_node_with_why_then_take_it_down_as_the_controller_does(
    tmp_path: Path, watch: tuple[Agent, list[PolledServices]]
) -> None:
    agent, opened = watch
    services = services_for(tmp_path, agent, opened, 0.5)
    wait_for(lambda: shown(services).state == "up", WAIT_S, "n1 up")
    agent.failing(True)
    wait_for(lambda: shown(services).state != "up", WAIT_S, "n1 failing")
    degraded = shown(services)
    assert (degraded.state, degraded.error, degraded.message) == ("degraded", "driver", REASON)
    assert [g.power_w for g in degraded.gpus] == [312.5]  # its last values kept, as for a silent node
    wait_for(lambda: shown(services).state == "down", WAIT_S, "n1 down after three missed samples")
    down = shown(services)
    assert (down.error, down.message) == ("driver", REASON)  # the agent's reason, not "no sample for 2 s"
    agent.failing(False)
    wait_for(lambda: shown(services).state == "up", WAIT_S, "n1 up at its next good sample")
    said = [(e.kind, e.message) for e in events(services)]
    assert said == [
        ("node_degraded", f"n1 is degraded: {REASON}"),  # the controller's events, word for word
        ("node_down", f"n1 is down: {REASON}"),
        ("node_up", "n1 is up"),
    ]


def test_a_broken_link_is_degraded_at_once_with_why(tmp_path: Path, watch: tuple[Agent, list[PolledServices]]) -> None:
    """A 10 s interval: silence would take 15 s to say degraded; the agent gone says it at once, as the controller."""
    agent, opened = watch
    services = services_for(tmp_path, agent, opened, 10)
    wait_for(lambda: shown(services).state == "up", WAIT_S, "n1 up")
    agent.failing(True)
    wait_for(lambda: services._nodes["n1"].health.failing is not None, WAIT_S, "n1's error sample")
    assert shown(services).state == "up"  # one failed poll of a slow interval: not an outage
    agent.exit()
    wait_for(lambda: shown(services).state == "degraded", 10.0, "n1 degraded as soon as its agent is gone")
    assert "exited" in shown(services).message
    assert [e.kind for e in events(services)] == ["node_degraded"]


def test_a_node_that_never_sent_a_good_sample_is_down_with_why(
    tmp_path: Path, watch: tuple[Agent, list[PolledServices]]
) -> None:
    agent, opened = watch
    agent.failing(True)
    services = services_for(tmp_path, agent, opened, 0.5)
    wait_for(lambda: shown(services).state != "connecting", WAIT_S, "n1's first answer")
    node = shown(services)
    assert (node.state, node.error, node.message, node.gpus) == ("down", "driver", REASON, ())


@pytest.mark.parametrize("interval_s", [0.5, 1.0, 5.0])
def test_the_controller_and_the_dashboard_judge_an_erroring_node_alike(tmp_path: Path, interval_s: float) -> None:
    """On a chosen clock: the agent's error comes 0.2 intervals after its last good sample, then silence goes on."""
    yaml = f"name: t\ncontroller: {{interval_s: {interval_s}}}\nnodes:\n  n1: {{transport: local, sim: h100-sxm}}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False)
    try:  # threads never started: judged by hand
        node = services._nodes["n1"]
        failed_at = 1000.0 + 0.2 * interval_s
        node.latest = NodeSample(node="n1", time=0.0)
        node.health.seen(1000.0)
        services.monotonic = lambda: failed_at
        node.sample_failed("n1", NodeError("n1", "driver", REASON))
        for tenths in range(2, 60):
            now = 1000.0 + tenths / 10 * interval_s
            health = NodeHealth("n1", interval_s)
            health.seen(1000.0)
            assert health.sample_failed(failed_at, "driver", REASON) is None  # up, a good sample just came
            health.tick(now)
            sample = node.sample(0.0, now)
            assert (now, sample.state, sample.error, sample.message) == (
                now,
                health.state,
                health.error,
                health.message,
            )
            why = (None, None) if health.state == "up" else ("driver", REASON)  # never a fake reason
            assert (health.error, health.message) == why
    finally:
        services.close()
