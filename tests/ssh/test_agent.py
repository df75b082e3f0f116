"""Shipping and starting the agent over SSH, its failures, and the nvidia-smi fallback, against a real sshd."""

from __future__ import annotations

from pathlib import Path

import pytest
from leaks import resource_warnings
from stand_in_agent import stand_in_zipapp

from factoryctl.errors import NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)

#: A stand-in agent speaking the protocol (hello, sample, shutdown); `--node dies` exits on its first request.
FAKE_AGENT = """
import json, sys
args = sys.argv[1:]
node = args[args.index("--node") + 1]
def send(m):
    sys.stdout.write(json.dumps(m) + "\\n"); sys.stdout.flush()
send({"type": "hello", "agent_version": "0.0.0", "protocol": 1, "backend": "sim", "node": node,
      "python": sys.version.split()[0], "gpus": 1, "argv": args})
for line in sys.stdin:
    req = json.loads(line)
    if node == "dies":
        sys.stderr.write("agent crashed: boom\\n"); sys.stderr.flush(); sys.exit(3)
    if req["op"] == "shutdown":
        send({"id": req["id"], "ok": True, "result": {"bye": True}}); break
    send({"id": req["id"], "ok": True, "result": {"time": 1.0, "backend": "sim", "gpus": [], "host": {},
          "argv": args}})
"""


@pytest.fixture
def fake_zipapp(tmp_path: Path) -> Path:
    return stand_in_zipapp(tmp_path, FAKE_AGENT)


def _open(spec) -> SshTransport:
    return SshTransport.open(spec, "lab", OPTIONS)


def test_agent_is_shipped_once_and_started(ssh_node, fake_zipapp, remote_cache):
    transport = _open(ssh_node("n1"))
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        assert transport.uploaded
        assert session.hello_info["node"] == "n1"
        session.request("sample", timeout=60)
        session.close()
        again = transport.start_agent(60, zipapp=fake_zipapp)
        assert not transport.uploaded
        again.close()
    finally:
        transport.close()
    assert (remote_cache / fake_zipapp.name).read_bytes() == fake_zipapp.read_bytes()


def test_agent_argv_reaches_the_node(ssh_node, fake_zipapp):
    from factoryctl.model.inventory import SimSpec

    transport = _open(ssh_node("n 1;$(x)", sim=SimSpec("h100-sxm", 2, 7)))
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        argv = session.hello_info["argv"]
        session.close()
    finally:
        transport.close()
    assert argv[:4] == ["--node", "n 1;$(x)", "--factory", "lab"]
    assert argv[argv.index("--sim") + 1] == "h100-sxm"


def test_changed_zipapp_is_uploaded_again(ssh_node, fake_zipapp, tmp_path):
    transport = _open(ssh_node())
    try:
        transport.start_agent(60, zipapp=fake_zipapp).close()
        other = tmp_path / "factoryctl-agent-fedcba9876543210.pyz"
        other.write_bytes(fake_zipapp.read_bytes())
        transport.start_agent(60, zipapp=other).close()
        assert transport.uploaded
    finally:
        transport.close()


def test_shipping_without_sftp_uses_cat(sshd_factory, tmp_path, fake_zipapp, remote_cache):
    server = sshd_factory(sftp=False)
    spec = server.node("n1", server.write_known_hosts(tmp_path / "kh"))
    transport = _open(spec)
    try:
        transport.start_agent(60, zipapp=fake_zipapp).close()
        assert transport.uploaded
        transport.start_agent(60, zipapp=fake_zipapp).close()
        assert not transport.uploaded
    finally:
        transport.close()
    assert (remote_cache / fake_zipapp.name).read_bytes() == fake_zipapp.read_bytes()


def test_an_agent_that_dies_is_an_agent_error(ssh_node, fake_zipapp):
    transport = _open(ssh_node("dies"))
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        with pytest.raises(NodeError) as caught:
            session.request("sample", timeout=60)
    finally:
        transport.close()
    assert caught.value.kind == "agent"
    assert "boom" in caught.value.message


@pytest.mark.parametrize("python", ["/nonexistent/python3", "/bin/false"], ids=["missing", "unusable"])
def test_python_missing_falls_back_to_nvidia_smi(sshd_factory, tmp_path, fake_zipapp, python):
    from factoryctl.errors import UsageError
    from factoryctl.sim.smi import write_shim

    server = sshd_factory()
    write_shim(server.bin_dir / "nvidia-smi", node="bare", state_dir=str(tmp_path / "sim"), factory="lab")
    spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"), python=python)
    transport = _open(spec)
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        assert transport.backend == "smi"
        assert session.hello_info["backend"] == "smi"
        sample = session.sample(timeout=60)
        assert sample.backend == "smi"
        assert len(sample.gpus) >= 1
        gpu = sample.gpus[0]
        assert gpu.power_w is not None
        assert gpu.power_w > 0
        assert gpu.energy_j is None
        low, high = gpu.power_limit_min_w, gpu.power_limit_max_w
        answer = session.set_power_limit(low + 50, gpus=[0], timeout=60)
        assert answer == [{"index": 0, "before_w": gpu.power_limit_w, "enforced_w": low + 50, "clamped": False}]
        assert session.sample(timeout=60).gpus[0].power_limit_w == low + 50
        with pytest.raises(UsageError):
            session.set_power_limit(high + 1000, timeout=60)
        assert session.sample(timeout=60).gpus[0].power_limit_w == low + 50
        session.close()
    finally:
        transport.close()


def test_concurrent_first_uploads_to_one_host(ssh_node, fake_zipapp, remote_cache):
    from concurrent.futures import ThreadPoolExecutor

    transports = [_open(ssh_node(f"n{i}")) for i in range(8)]
    try:
        with ThreadPoolExecutor(8) as pool:
            sessions = list(pool.map(lambda t: t.start_agent(60, zipapp=fake_zipapp), transports))
        assert [s.hello_info["node"] for s in sessions] == [f"n{i}" for i in range(8)]
        for session in sessions:
            session.close()
    finally:
        for transport in transports:
            transport.close()
    assert (remote_cache / fake_zipapp.name).read_bytes() == fake_zipapp.read_bytes()
    assert not list(remote_cache.glob("*.part"))


def test_no_python_and_no_nvidia_smi_is_a_driver_error(sshd_factory, tmp_path, fake_zipapp):
    server = sshd_factory()  # its own PATH: no nvidia-smi shim from another test
    spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"), python="/nonexistent/python3")
    with resource_warnings() as leaks:
        transport = _open(spec)
        try:
            with pytest.raises(NodeError) as caught:
                transport.start_agent(60, zipapp=fake_zipapp)
        finally:
            transport.close()
        kind, message = caught.value.kind, caught.value.message
        del transport, caught  # the traceback holds the session
    assert kind == "driver"
    assert "nvidia-smi" in message
    assert "/nonexistent/python3" in message
    assert leaks == []  # the session's pipes to the nvidia-smi bridge were left open


def test_an_agent_whose_connection_dies_is_a_lost_connection_not_an_agent_that_exited(
    sshd_factory, tmp_path, fake_zipapp
):
    """sshd killed (or a reset) takes the agent's channel down with no exit status: the connection was lost."""
    from waiting import wait_for

    server = sshd_factory()
    transport = _open(server.node("n1", server.write_known_hosts(tmp_path / "kh")))
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        server.kill()
        wait_for(lambda: session.failure is not None)
        assert session.failure is not None
        assert session.failure.kind == "refused"
        assert session.failure.message.startswith("connection lost to ")
    finally:
        transport.close()


def test_an_agent_that_exits_is_still_said_to_have_exited(ssh_node, fake_zipapp):
    transport = _open(ssh_node("n1"))
    try:
        session = transport.start_agent(60, zipapp=fake_zipapp)
        session._stdin.close()  # EOF: the stand-in agent's loop ends and it exits 0
        from waiting import wait_for

        wait_for(lambda: session.failure is not None)
        assert session.failure is not None
        assert session.failure.kind == "agent"
        assert "the agent exited" in session.failure.message
    finally:
        transport.close()
