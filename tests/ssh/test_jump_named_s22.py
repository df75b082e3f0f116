"""Session 22: a node's agent (or its nvidia-smi bridge) lost with its jump host names the jump host, with its hint.

`exec` named the jump host of a connection lost under a command, but a poll (`nodes list`, `gpus`, the controller)
did not: an agent lost as it started, or after its hello, said "connection lost to NODE" or "connection lost while
starting the agent", and the one table of hints (`hinted`, `node_error_hint`) gave any lost connection the hint
about the node's sshd alone, even the sentence `exec` wrote. Real sshds: one is the jump host, killed mid-session.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import PATIENT, SshdServer
from stand_in_agent import stand_in_zipapp
from user_ssh_config import write_user_ssh_config
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.sim import smi as shim
from factoryctl.transport.hints import LOST_HINT, hinted, node_error_hint
from factoryctl.transport.ssh import lost_connection
from factoryctl.transport.ssh_config import SshTarget
from factoryctl.transport.ssh_node import SshTransport

#: A stand-in agent that says hello and answers every request with an empty sample until its stdin ends.
AGENT = """
import json, sys
args = sys.argv[1:]
def send(m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
send({"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim",
      "node": args[args.index("--node") + 1], "python": sys.version.split()[0], "gpus": 0})
for line in sys.stdin:
    send({"id": json.loads(line)["id"], "ok": True, "result": {"time": 1.0, "backend": "sim", "gpus": [], "host": {}}})
"""


def _jump_label(jump: SshdServer) -> str:
    return f"{jump.user}@127.0.0.1:{jump.port}"


def _assert_names_the_jump_host(error: NodeError, jump: SshdServer) -> None:
    """`error` is a lost connection naming the jump host, and a poll (`hinted`) hints at the jump host and the node."""
    assert error.kind == "refused", error
    assert error.message.endswith(f" (through jump host {_jump_label(jump)})"), error.message
    polled = hinted(error)
    assert polled.hint is not None
    assert f"jump host {_jump_label(jump)} and the node" in polled.hint, polled.hint
    assert polled.hint != LOST_HINT


# ------------------------------------------------------------------------------------------- `gpus`, end to end


def test_gpus_through_a_jump_host_killed_as_the_agent_starts_names_it_with_its_hint(
    cli: Any, isolated_home: Path, sshd: SshdServer, sshd_factory: Any, known_hosts: Path, tmp_path: Path
) -> None:
    """The node's `python:` stands in for the agent: it says it started, then waits; the jump host dies meanwhile."""
    jump = sshd_factory()
    write_user_ssh_config(
        isolated_home,
        f"Host behind\n  HostName 127.0.0.1\n  Port {sshd.port}\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n  IdentityFile {jump.user_key}\n",
    )
    jump.write_known_hosts(known_hosts)
    started, hold = tmp_path / "started", tmp_path / "hold"
    hold.touch()
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\ntouch {started}\nwhile [ -e {hold} ]; do sleep 0.1; done\n")
    python.chmod(0o755)
    ssh = f"connect_timeout_s: 30, user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {known_hosts}"
    factory = tmp_path / "factory.yaml"
    factory.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  b1: {{host: behind, python: {python}}}\n")

    def kill_jump_host_when_the_agent_starts() -> None:
        wait_for(started.exists, 60, "the agent started")
        jump.kill()

    killer = threading.Thread(target=kill_jump_host_when_the_agent_starts, daemon=True)
    killer.start()
    try:
        r = cli("--config", str(factory), "gpus", "--timeout", "60")
    finally:
        hold.unlink()  # the stand-in ends on the node
        killer.join(60)
    assert r.exit_code == 4, r.stderr
    said = f"b1: connection lost while starting the agent (through jump host {_jump_label(jump)})"
    assert said in r.stderr, r.stderr
    hint = r.stderr.split("hint: ", 1)[1]
    assert f"jump host {_jump_label(jump)} and the node" in hint, hint


# ----------------------------------------------------------------------------- the agent and the smi bridge


def _behind(node: SshdServer, jump: SshdServer, tmp_path: Path, **fields: Any) -> SshTransport:
    """A transport to the sshd `node`, reached through the sshd `jump` (ProxyJump in its own ssh_config)."""
    config = tmp_path / "ssh_config"
    config.write_text(
        "Host behind\n  HostName 127.0.0.1\n  ProxyJump jumpy\n\n"
        f"Host jumpy\n  HostName 127.0.0.1\n  Port {jump.port}\n  User {jump.user}\n  IdentityFile {jump.user_key}\n"
    )
    known_hosts = jump.write_known_hosts(node.write_known_hosts(tmp_path / "kh"))
    spec = node.node("b1", known_hosts, host="behind", **fields)
    return SshTransport.open(spec, "lab", dataclasses.replace(PATIENT, ssh_config=config))


def test_an_agent_lost_with_its_jump_host_after_its_hello_names_it(
    sshd: SshdServer, sshd_factory: Any, tmp_path: Path
) -> None:
    jump = sshd_factory()
    transport = _behind(sshd, jump, tmp_path)
    try:
        session = transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, AGENT))
        session.sample(60)
        jump.kill()
        wait_for(lambda: session.failure is not None, 60, "the session failed")
        assert session.failure is not None
        _assert_names_the_jump_host(session.failure, jump)
        with pytest.raises(NodeError) as caught:
            session.sample(60)  # what the next poll of a controller meets
        _assert_names_the_jump_host(caught.value, jump)
    finally:
        transport.close()


def test_an_nvidia_smi_bridge_lost_with_its_jump_host_names_it(sshd_factory: Any, tmp_path: Path) -> None:
    node, jump = sshd_factory(), sshd_factory()
    shim.write_shim(node.bin_dir / "nvidia-smi", "b1", str(tmp_path / "sim"), "lab")
    transport = _behind(node, jump, tmp_path, python="/nonexistent/python3")
    try:
        session = transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, "raise SystemExit(3)"))
        assert transport.backend == "smi"
        session.sample(60)
        failed = threading.Event()
        session.wake_on_failure(failed)
        jump.kill()
        session.stream(0.2, lambda sample: None, timeout=60)  # its first poll meets the dead connection
        assert failed.wait(60)
        assert session.failure is not None
        _assert_names_the_jump_host(session.failure, jump)
        session.close()
    finally:
        transport.close()


# ------------------------------------------------------------------------------------------ the one table


def _target(name: str, port: int, jump: SshTarget | None = None) -> SshTarget:
    return SshTarget(host="127.0.0.1", port=port, user=name, identity_files=(), known_hosts="kh", jump=jump)


@pytest.mark.parametrize("hops", [1, 2], ids=["one-jump-host", "two-jump-hosts"])
def test_a_lost_connection_through_jump_hosts_gets_the_same_hint_from_exec_a_poll_and_the_store(hops: int) -> None:
    """One failure, one hint: `exec` (the error's own), a poll (`hinted`) and the store (`node_error_hint`) agree."""
    outer = _target("ops", 2200)
    jump = outer if hops == 1 else _target("ops", 2201, outer)
    lost = lost_connection("n1", "while the command ran", jump=jump)
    assert lost.hint is not None
    assert "the node" in lost.hint
    assert hinted(lost).hint == lost.hint
    assert node_error_hint("n1", lost.kind, lost.message) == lost.hint
    assert node_error_hint("n1", "refused", "connection lost to ops@127.0.0.1:22") == LOST_HINT
