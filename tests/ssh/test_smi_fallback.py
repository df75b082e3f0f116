"""The nvidia-smi fallback on an older driver, and its stream through failed polls, against a real sshd.

The shim is the only stand-in: it answers as the nvidia-smi of the driver version it is given, so a driver before
R535 refuses `clocks_event_reasons.*` as the real tool does. The fallback asked for that name alone, so every node
on an older driver was down with "nvidia-smi failed". Its stream ended without a word at the first failed poll, and
held its first sample back by a whole interval.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import WAIT_S, Wire
from stand_in_agent import stand_in_zipapp

from factoryctl.sim import smi as shim
from factoryctl.sim.state import SimNode
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.smi_query import REASON_NAMES
from factoryctl.transport.ssh import SshConnection, SshOptions
from factoryctl.transport.ssh_node import SshTransport
from factoryctl.transport.ssh_pool import SshPool

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
OLD_DRIVER = "525.147.05"


# ---------------------------------------------------------------------------------------------------- the shim


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    SimNode(tmp_path / "state", "n1", profile="h100-sxm", gpus=1)

    def call(*args: str) -> tuple[int, str]:
        code = shim.main(["--node", "n1", "--state-dir", str(tmp_path / "state"), *args])
        out = capsys.readouterr()
        return code, out.out + out.err

    return call


def test_the_shim_of_a_driver_before_r535_knows_only_the_old_name(run: Any) -> None:
    old = ("--driver-version", OLD_DRIVER, "--format=csv,noheader")
    code, out = run(*old, "--query-gpu=index,clocks_event_reasons.active")
    assert code == 2
    assert out.strip() == 'Field "clocks_event_reasons.active" is not a valid field to query.'
    code, out = run(*old, "--query-gpu=driver_version,clocks_throttle_reasons.active")
    assert code == 0
    version, reasons = out.strip().split(", ")
    assert version == OLD_DRIVER
    assert reasons.startswith("0x")


def test_the_shim_of_a_later_driver_takes_both_names(run: Any) -> None:
    code, out = run("--format=csv,noheader", "--query-gpu=clocks_event_reasons.active,clocks_throttle_reasons.active")
    assert code == 0
    new, old = out.strip().split(", ")
    assert new == old
    code, out = run("--driver-version", "five", "--query-gpu=index", "--format=csv")
    assert code == 2
    assert "driver version" in out


# ---------------------------------------------------------------------------------------------------- the bridge


@pytest.fixture
def node(sshd_factory: Any, tmp_path: Path) -> Any:
    """`node(driver_version=None)`: (connection, the shim's path) to a fresh sshd whose PATH has the shim."""
    pools: list[SshPool] = []

    def make(driver_version: str | None = None) -> tuple[SshConnection, Path]:
        server = sshd_factory()  # its own PATH: its own shim
        path = shim.write_shim(
            server.bin_dir / "nvidia-smi", "bare", str(tmp_path / "sim"), "lab", driver_version=driver_version
        )
        pool = SshPool(OPTIONS)
        pools.append(pool)
        spec = server.node("bare", server.write_known_hosts(tmp_path / f"kh-{server.port}"))
        return pool.connect(spec), path

    yield make
    for pool in pools:
        pool.close()


@pytest.fixture
def wire(node: Any) -> Iterator[Any]:
    """`wire(driver_version=None)`: (Wire, bridge, the shim's path), the hello already read."""
    wires: list[Wire] = []

    def make(driver_version: str | None = None) -> tuple[Wire, SmiBridge, Path]:
        connection, path = node(driver_version)
        bridge = SmiBridge("bare", connection, timeout=30)
        speaker = Wire(bridge)
        wires.append(speaker)
        hello = speaker.read()
        assert hello["type"] == "hello", (hello, bridge.error)
        return speaker, bridge, path

    yield make
    for speaker in wires:
        speaker.close()


def test_a_node_on_a_driver_before_r535_is_read_and_the_name_kept(wire: Any) -> None:
    speaker, bridge, _ = wire(OLD_DRIVER)
    assert bridge.reasons_name == "clocks_throttle_reasons.active"
    speaker.send(id=1, op="sample")
    reply = speaker.read()
    assert reply["ok"] is True, reply
    gpu = reply["result"]["gpus"][0]
    assert isinstance(gpu["throttle_reasons"], list)
    assert "throttle_reasons" not in gpu["null_reasons"]
    assert bridge.reasons_name == "clocks_throttle_reasons.active"


def test_a_later_driver_is_asked_by_the_current_name(wire: Any) -> None:
    speaker, bridge, _ = wire()
    speaker.send(id=1, op="sample")
    assert isinstance(speaker.read()["result"]["gpus"][0]["throttle_reasons"], list)
    assert bridge.reasons_name == REASON_NAMES[0] == "clocks_event_reasons.active"


def test_the_first_sample_of_a_stream_comes_at_once_after_the_reply(wire: Any) -> None:
    speaker, _, _ = wire()
    speaker.send(id=7, op="stream", interval_s=3600)  # the next sample is up to an hour away
    assert speaker.read() == {"id": 7, "ok": True, "result": {"streaming": True}}
    first = speaker.read()
    assert (first["id"], first["type"]) == (7, "sample")
    assert first["result"]["backend"] == "smi"
    assert len(first["result"]["gpus"]) >= 1


def test_a_failed_poll_is_an_error_sample_and_the_stream_goes_on(wire: Any) -> None:
    speaker, _, path = wire()
    speaker.send(id=3, op="stream", interval_s=0.2)
    assert speaker.read()["ok"] is True
    assert "result" in speaker.read()
    away = path.with_name("nvidia-smi.away")
    path.rename(away)  # the driver's tools gone for a while (an upgrade under way)
    try:
        while "result" in (message := speaker.read()):
            pass
    finally:
        away.rename(path)
    assert message["id"] == 3
    assert message["type"] == "sample"
    assert message["ok"] is False
    assert message["error"]["kind"] == "driver"
    assert "nvidia-smi failed" in message["error"]["message"]
    assert "not found" in message["error"]["message"]
    while "error" in (message := speaker.read()):
        pass
    assert message["id"] == 3
    assert len(message["result"]["gpus"]) >= 1


def test_a_stream_over_a_lost_connection_ends_the_session_saying_so(sshd_factory: Any, tmp_path: Path) -> None:
    server = sshd_factory()
    shim.write_shim(server.bin_dir / "nvidia-smi", "bare", str(tmp_path / "sim"), "lab")
    spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"), python="/nonexistent/python3")
    transport = SshTransport.open(spec, "lab", OPTIONS)
    try:
        session = transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, "raise SystemExit(3)"))
        assert transport.backend == "smi"
        samples: queue.Queue[Any] = queue.Queue()
        session.stream(0.2, samples.put, timeout=60)
        samples.get(timeout=WAIT_S)
        failed = threading.Event()
        session.wake_on_failure(failed)
        server.kill()
        assert failed.wait(WAIT_S)
        assert session.failure is not None
        assert session.failure.kind == "refused"
        assert "connection lost" in session.failure.message
        session.close()
    finally:
        transport.close()


def test_a_node_on_a_driver_before_r535_falls_back_end_to_end(sshd_factory: Any, tmp_path: Path) -> None:
    server = sshd_factory()
    shim.write_shim(server.bin_dir / "nvidia-smi", "bare", str(tmp_path / "sim"), "lab", driver_version=OLD_DRIVER)
    spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"), python="/nonexistent/python3")
    transport = SshTransport.open(spec, "lab", OPTIONS)
    try:
        session = transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, "raise SystemExit(3)"))
        assert session.hello_info["backend"] == "smi"
        gpu = session.sample(timeout=60).gpus[0]
        assert gpu.power_w is not None
        assert "throttle_reasons" not in gpu.null_reasons
        session.close()
    finally:
        transport.close()
