"""The embedded collector's reconnect loop (the controller's `NodeLink`) as the dashboard sees it.

No fake transport: each node is a real local one. A misbehaving agent is a node whose `python:` is a script that
speaks just enough of the agent protocol (hello, the stream's reply, one sample), then exits (a flapping node) or
goes silent while still alive (a hung one). The script logs each start, so attempts are counted from the outside.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

import pytest
from factory_data import node
from test_live import agent_process, states, wait_for

from factoryctl.config import parse_config
from factoryctl.live.services_polled import PolledServices

#: The agent's first words (after `{before}`); then it exits, or stays silent until its input ends (`{then}`).
SCRIPTED_AGENT = """\
#!{python}
import json, sys, time
with open({log!r}, "a") as log:
    log.write(f"{{time.time()}}\\n")
{before}
def send(message):
    sys.stdout.write(json.dumps(message) + "\\n")
    sys.stdout.flush()
send({{"type": "hello", "agent_version": "scripted", "protocol": 1, "backend": "sim"}})
request = json.loads(sys.stdin.readline())
send({{"id": request["id"], "ok": True, "result": {{"streaming": True}}}})
send({{"id": request["id"], "type": "sample", "result": {{"time": time.time(), "gpus": []}}}})
{then}
"""
EXITS = "sys.exit(0)"
GOES_SILENT = "sys.stdin.read()"


def scripted_services(
    tmp_path: Path, then: str, before: str = "", interval_s: float = 1.0
) -> tuple[PolledServices, Path]:
    """Services watching node `n1` whose agent is the script; and the script's log of starts."""
    log = tmp_path / "starts.log"
    python = tmp_path / "scripted-python"
    python.write_text(SCRIPTED_AGENT.format(python=sys.executable, log=str(log), before=before, then=then))
    python.chmod(0o755)
    yaml = f"name: s\ncontroller: {{interval_s: {interval_s}}}\nnodes:\n  n1: {{transport: local, python: {python}}}\n"
    return PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False), log


def starts(log: Path) -> list[float]:
    """When each agent of the node started (wall clock, as the script wrote it)."""
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def event_kinds(services: PolledServices, node: str) -> list[str]:
    """The node's events as recorded so far (read without judging, unlike a snapshot)."""
    return [e.kind for e in list(services._events) if e.node == node]


def test_a_flapping_node_is_retried_with_a_growing_delay_not_every_second(tmp_path: Path) -> None:
    services, log = scripted_services(tmp_path, EXITS, interval_s=0.5)  # the first delay about 0.5 s, not 1 s
    try:
        services.start()
        # four attempts, and three seconds seen since the first (a condition on the log, not a sleep)
        wait_for(lambda: len(starts(log)) >= 4 and time.time() - starts(log)[0] >= 3.0, 30.0, "four attempts")
        assert states(services)["n1"] in {"up", "degraded", "down"}  # judged by its links, never `connecting`
    finally:
        services.close()
    times = starts(log)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Retried every half second (a backoff restarted by each connect), three seconds hold six attempts or so. A
    # backoff that grows waits at least 0.25, 0.5, 1, 2 s (the lower half of each doubling delay): at most 4 in 3 s,
    # and the third wait alone is at least 1 s. Bounds from below only: a loaded machine makes the waits longer.
    assert sum(1 for t in times if t - times[0] <= 3.0) <= 4, gaps
    assert gaps[2] >= 1.0, gaps
    assert services._nodes["n1"].link.connects >= 4  # each start was a connect: hello and stream answered


def test_a_broken_stream_shows_at_the_next_snapshot_however_long_the_interval(tmp_path: Path) -> None:
    yaml = "name: slow\ncontroller: {interval_s: 10}\nnodes:\n  s1: {transport: local, sim: h100-sxm, gpus: 1}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), use_store=False)
    try:
        wait_for(lambda: states(services)["s1"] == "up", 15.0, "s1 up")
        link = services._nodes["s1"].link
        session = link.session
        assert session is not None
        agent_process("s1").kill()
        wait_for(lambda: session.failure is not None, 5.0, "the session's reader seeing the agent gone")
        # the link itself looks every half interval (5 s here): the snapshot does not wait for it. A broken link
        # degrades its node at once, with the link's reason, as the controller's (`NodeHealth.failed`)
        shown = services.snapshot().node("s1")
        assert (shown.state, shown.message) == ("degraded", session.failure.message)
    finally:
        services.close()


def test_a_silent_session_is_torn_down_and_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # at a 0.5 s interval (down after 1.75 s, retried after 0.5 s), torn down after 1.5 s, not 10 s: a shorter test
    monkeypatch.setattr(PolledServices, "link_stall_s", property(lambda self: 1.5))
    services, log = scripted_services(tmp_path, GOES_SILENT, interval_s=0.5)
    try:
        services.start()
        # No snapshot is taken: the events come from the dashboard's own judging (degraded, down) and its link,
        # which tears the silent session down when the node is judged down and connects again (up).
        wait_for(lambda: "node_up" in event_kinds(services, "n1"), 30.0, "n1 up on a new session")
        # a silence reason refined by the link's own ("no sample for 2 s; reconnecting.") is one more event
        assert [k for k, _ in itertools.groupby(event_kinds(services, "n1"))][:3] == [
            "node_degraded",
            "node_down",
            "node_up",
        ]
        assert len(starts(log)) >= 2
    finally:
        services.close()


def test_a_node_seeded_by_a_hand_back_keeps_its_state_while_its_link_is_slow_to_connect(tmp_path: Path) -> None:
    """n1 was up when a controller handed back; its agent takes 2.5 s to answer (an SSH node on a loaded network),
    longer than the 1.75 s of silence that take a node down at a 0.5 s interval: its silence counts from its link
    made, so it stays up, with no event, until its first sample."""
    services, _ = scripted_services(tmp_path, GOES_SILENT, before="time.sleep(2.5)", interval_s=0.5)
    try:
        handed_back = time.time()
        services.seed([dataclasses.replace(node(1), node="n1", time=handed_back - 2.75)])
        shown = []
        while not shown or shown[-1].time < handed_back:  # until its first sample
            assert time.time() - handed_back < 30, "n1 never answered"
            shown.append(services.snapshot().node("n1"))
            time.sleep(0.1)
        assert time.time() - handed_back >= 2.25  # silent for longer than judges a node down
        assert {n.state for n in shown} == {"up"}
        assert event_kinds(services, "n1") == []
    finally:
        services.close()


def test_a_local_target_is_not_refused_for_a_bad_cache_setting_of_ssh_nodes_it_does_not_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", "a\nb")  # only SSH nodes use it (`dash` checks its target's)
    yaml = """\
name: mix
nodes:
  l1: {transport: local, sim: h100-sxm, gpus: 1}
  far: {host: 127.0.0.1, port: 1, sim: h100-sxm, gpus: 1}
"""
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), "l1", use_store=False)
    try:
        wait_for(lambda: states(services)["l1"] == "up", 15.0, "l1 up")
    finally:
        services.close()


@pytest.mark.parametrize(("interval", "stall"), [(1.0, 10.0), (0.1, 10.0), (5.0, 17.5)])
def test_a_node_judged_down_keeps_its_session_as_the_controller_does(
    tmp_path: Path, interval: float, stall: float
) -> None:
    """Down after 3.5 intervals of silence, but the agent is only replaced after 10 s at least (as the controller's
    links): a node slow for a few seconds kept its agent before the dashboard shared the controller's judge."""
    yaml = f"name: mix\ncontroller: {{interval_s: {interval}}}\nnodes:\n  l1: {{transport: local, sim: h100-sxm, gpus: 1}}\n"
    services = PolledServices(parse_config(yaml, tmp_path / "factory.yaml", tmp_path / "state"), "l1", use_store=False)
    try:
        assert services._nodes["l1"].link.stall_s == stall
        assert services.down_after_s == 3.5 * max(interval, 0.5)  # under 0.5 s, judged as 0.5 s (no flapping)
    finally:
        services.close()
