"""One failure, one hint: a node asked directly and the same failure read from a live controller's store agree.

Before, `nodes`/`gpus` read from a live store gave the kind's generic hint (cli/listing.py ERROR_HINTS) for every
failure but a host key or silence, so DNS, banner, auth and a missing Python each had two hints, and the missing
Python's live one ("check the NVIDIA driver") was wrong; a TCP connect timeout said "is the node up?" where only
ssh.connect_timeout_s bounds it, and a node without Python was `degraded` when asked directly but `down` under the
controller (review hints17, findings 2, 3, 5, 8). Each failure here is a real one: a real sshd, a closed port, a
listener whose backlog is full, a silent listener, a wrong key, an unknown and a changed host key, a `python:`
that does not exist and one that hangs as the agent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from full_backlog import full_backlog_port
from silent_listener import silent_listener
from sshd_fixture import SshdServer, free_port, keygen

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store

#: `python:` answering the `-c` probes (version check) but hanging when started as the agent.
_HANGS_AS_AGENT = '#!/bin/sh\nif [ "$1" = "-c" ]; then exec python3 "$@"; fi\nexec sleep 20\n'


@pytest.fixture(scope="module")
def backlog_full() -> Iterator[int]:
    """A port whose listen backlog is full: a new connection's SYN is dropped, so connect() times out."""
    with full_backlog_port() as port:
        yield port


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts and never says anything."""
    with silent_listener() as port:
        yield port


def _factory(tmp_path: Path, sshd: SshdServer, known: Path, node: str) -> Path:
    """factory.yaml with the node `node` (its YAML flow mapping) as `x1` and a local node `l1`; a state_dir its own."""
    config = tmp_path / "factory.yaml"
    ssh = (
        f"connect_timeout_s: 1, user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {known}, "
        f"port: {sshd.port}"
    )
    config.write_text(
        f"name: hints\nstate_dir: {tmp_path / 'state'}\nssh: {{{ssh}}}\n"
        f"nodes:\n  x1: {node}\n  l1: {{transport: local}}\n"
    )
    return config


def _failures(tmp_path: Path, sshd: SshdServer, backlog: int, silent: int) -> dict[str, tuple[str, Path]]:
    """Each failure: (its node's YAML, the known_hosts its factory uses)."""
    known = sshd.write_known_hosts(tmp_path / "known_hosts")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    changed = tmp_path / "changed_known_hosts"
    other_type, other_blob = keygen(tmp_path / "other_host_key").with_suffix(".pub").read_text().split()[:2]
    changed.write_text(f"[{sshd.host}]:{sshd.port} {other_type} {other_blob}\n")
    wrong = keygen(tmp_path / "wrong_id")
    hang = tmp_path / "hangs_as_agent.sh"
    hang.write_text(_HANGS_AS_AGENT)
    hang.chmod(0o755)
    return {
        "dns": ("{host: no-such-host.invalid}", known),
        "refused": (f"{{host: 127.0.0.1, port: {free_port()}}}", known),
        "connect_timeout": (f"{{host: 127.0.0.1, port: {backlog}}}", known),
        "banner": (f"{{host: 127.0.0.1, port: {silent}}}", known),
        "auth": (f"{{host: 127.0.0.1, identity_file: {wrong}}}", known),
        "unknown_key": ("{host: 127.0.0.1}", empty),
        "changed_key": ("{host: 127.0.0.1}", changed),
        "no_python": ("{host: 127.0.0.1, python: /nonexistent/python3}", known),
        "agent_hangs": (f"{{host: 127.0.0.1, python: {hang}}}", known),
    }


FAILURES = ("dns", "refused", "connect_timeout", "banner", "auth", "unknown_key", "changed_key", "no_python",
            "agent_hangs")  # fmt: skip


def _hints(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("hint: ")]


def _asked(cli: Callable[..., Any], config: Path, *args: str) -> tuple[int, dict[str, Any], list[str]]:
    """`nodes x1 -o json` (and `args`): exit status, the node's `errors` entry, the hint lines on stderr."""
    result = cli("-c", str(config), "nodes", "x1", "-o", "json", "--timeout", "2", *args)
    errors = json.loads(result.stdout)["errors"]
    assert len(errors) == 1, result.stdout
    return result.exit_code, errors[0], _hints(result.stderr)


def _stored(cli: Callable[..., Any], config: Path, states: list[NodeState]) -> Any:
    """`nodes x1` while a live controller (its lock held, l1's sample fresh) has stored `states`."""
    state = config.parent / "state"
    lock = ControllerLock(state)
    lock.acquire()
    try:
        store = Store(state / "factory.db")
        now = time.time()
        l1 = NodeSample("l1", now, gpus=(GpuSample("l1", 0, uuid="GPU-l1", power_w=300.0),))
        store.write([l1], states=states)
        store.close()
        return cli("-c", str(config), "nodes", ",".join(s.node for s in states), "-o", "json")
    finally:
        lock.release()


@pytest.fixture
def failure_config(
    request: pytest.FixtureRequest, tmp_path: Path, sshd: SshdServer, backlog_full: int, silent_port: int
) -> Path:
    node, known = _failures(tmp_path, sshd, backlog_full, silent_port)[request.param]
    return _factory(tmp_path, sshd, known, node)


@pytest.mark.parametrize("failure_config", FAILURES, indirect=True)
def test_a_stored_failure_gets_the_hint_and_exit_of_the_same_failure_asked_directly(
    failure_config: Path, cli: Callable[..., Any]
) -> None:
    status, error, hints = _asked(cli, failure_config)
    assert len(hints) == 1, hints
    assert not hints[0].endswith("?"), hints  # something to do, not a question

    stored = _stored(
        cli, failure_config, [NodeState("x1", "down", time.time(), None, error["error"], error["message"])]
    )
    assert stored.exit_code == status
    assert _hints(stored.stderr) == hints


@pytest.mark.parametrize("failure_config", ["no_python"], indirect=True)
def test_a_node_without_python_is_down_with_the_python_hint_and_collect_counts_no_sample_from_it(
    failure_config: Path, cli: Callable[..., Any]
) -> None:
    listing = cli("-c", str(failure_config), "nodes", "x1", "-o", "json", "--timeout", "5")
    (node,) = json.loads(listing.stdout)["items"]
    assert node["state"] == "down"  # as the controller judges it (health.py NodeHealth), not `degraded`
    (hint,) = _hints(listing.stderr)
    assert "install python3 (>= 3.9) on the node" in hint
    assert "NVIDIA driver" not in hint

    collected = cli("-c", str(failure_config), "telemetry", "collect", "x1", "--timeout", "5")
    assert collected.exit_code == 1
    assert "stored 0 GPU samples from 0 of 1 nodes" in collected.stderr


@pytest.mark.parametrize("failure_config", ["connect_timeout"], indirect=True)
def test_a_connect_timeout_names_ssh_connect_timeout_s_not_timeout(
    failure_config: Path, cli: Callable[..., Any]
) -> None:
    status, error, (hint,) = _asked(cli, failure_config, "--timeout", "30")
    assert status == 124
    assert error["message"].endswith("within 1 s (ssh.connect_timeout_s)")
    assert "ssh.connect_timeout_s" in hint
    assert "--timeout" not in hint


@pytest.mark.parametrize("failure_config", ["dns"], indirect=True)
def test_nodes_check_gives_a_dns_failure_the_hint_the_other_commands_give(
    failure_config: Path, cli: Callable[..., Any]
) -> None:
    _, _, (hint,) = _asked(cli, failure_config)
    check = cli("-c", str(failure_config), "nodes", "check", "x1")
    assert check.exit_code == 4
    assert f"x1: dns: fix: {hint.removeprefix('hint: ')}" in check.stdout.splitlines()


@pytest.mark.parametrize("failure_config", ["refused"], indirect=True)
def test_the_controller_silence_hint_reads_right_for_several_nodes(
    failure_config: Path, cli: Callable[..., Any]
) -> None:
    now = time.time()
    silent = [NodeState(node, "down", now, now - 60, "timeout", "3 samples missed.") for node in ("x1", "l1")]
    stored = _stored(cli, failure_config, silent)
    assert _hints(stored.stderr) == [
        "hint: no recent sample reached the controller: run `factoryctl nodes check l1,x1` for the nodes' side, "
        "and `factoryctl controller status` for the controller's."
    ]
