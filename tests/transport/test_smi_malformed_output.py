"""nvidia-smi output the bridge cannot read is the node's error: a stream says it and goes on; a first query ends it.

The fuzzing review's finding: a CR inside a field (any GPU name can hold one) made `parse_query` raise `csv.Error`,
which is no ValueError. A stream's thread died with a traceback (over the dashboard) and its samples stopped without
a word; on the bridge's first query the whole bridge ended, the node down as "nvidia-smi did not answer". An index
printed as `1e19` became the int 10**19, which failed every store write of every node. A real sshd; the node's
`nvidia-smi` is the simulated driver's shim, passed through a filter that garbles its query rows as each test says.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import OPTIONS, Wire
from sshd_fixture import SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from stand_in_agent import stand_in_zipapp

from factoryctl.errors import NodeError
from factoryctl.sim import smi as shim
from factoryctl.sim.state import SimNode
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh_node import SshTransport
from factoryctl.transport.ssh_pool import SshPool

#: The node's nvidia-smi: the shim at REAL, each query row garbled by GARBLE (its first two fields: index, uuid)
#: while the file POISON exists.
FILTER = """#!{python}
import os, subprocess, sys
done = subprocess.run([{real!r}, *sys.argv[1:]], capture_output=True)
out = done.stdout
if os.path.exists({poison!r}) and any(a.startswith("--query-gpu") for a in sys.argv):
    rows = []
    for row in out.split(b"\\n"):
        fields = row.split(b", ")
        if len(fields) > 2:
            {garble}
        rows.append(b", ".join(fields))
    out = b"\\n".join(rows)
sys.stdout.buffer.write(out)
sys.stderr.buffer.write(done.stderr)
sys.exit(done.returncode)
"""
#: A CR inside the UUID field (csv: "new-line character seen in unquoted field").
CR_IN_FIELD = 'fields[1] = fields[1] + b"\\r"'
#: GPU 0's index printed as 1e19 (as the int 10**19, it failed every store write).
HUGE_INDEX = 'fields[0] = b"1e19" if fields[0] == b"0" else fields[0]'
GARBLES = {"cr": (CR_IN_FIELD, "unreadable CSV: new-line character"), "index": (HUGE_INDEX, "GPU index '1e19'")}


def garbling_smi(server: SshdServer, tmp_path: Path, garble: str) -> Path:
    """Install the filtered nvidia-smi on `server`'s PATH for node `bare` (2 GPUs); returns its POISON file."""
    SimNode(tmp_path / "sim", "bare", "lab", profile="h100-sxm", gpus=2)
    real = shim.write_shim(server.bin_dir / "real-nvidia-smi", "bare", str(tmp_path / "sim"), "lab")
    poison = tmp_path / "poison"
    script = server.bin_dir / "nvidia-smi"
    script.write_text(FILTER.format(python=sys.executable, real=str(real), poison=str(poison), garble=garble))
    script.chmod(0o755)
    return poison


@pytest.fixture
def wire(sshd: SshdServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:  # noqa: F811
    """`wire(garble)`: (Wire to a bridge on `sshd`, its POISON file), the hello read while the output is sound."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    pools: list[SshPool] = []
    wires: list[Wire] = []

    def make(garble: str) -> tuple[Wire, Path]:
        poison = garbling_smi(sshd, tmp_path, garble)
        pool = SshPool(OPTIONS)
        pools.append(pool)
        spec = sshd.node("bare", sshd.write_known_hosts(tmp_path / "kh"))
        bridge = SmiBridge("bare", pool.connect(spec), timeout=30)
        speaker = Wire(bridge)
        wires.append(speaker)
        hello = speaker.read()
        assert hello["type"] == "hello", (hello, bridge.error)
        return speaker, poison

    yield make
    for speaker in wires:
        speaker.close()
    for pool in pools:
        pool.close()


@pytest.mark.parametrize("garble", sorted(GARBLES))
def test_output_it_cannot_read_is_an_error_sample_and_the_stream_goes_on(wire: Any, garble: str) -> None:
    code, said = GARBLES[garble]
    speaker, poison = wire(code)
    speaker.send(id=3, op="stream", interval_s=0.2)
    assert speaker.read()["ok"] is True
    assert "result" in speaker.read()
    poison.touch()
    try:  # the thread died here (a CR): no message came any more; or (1e19) the samples went on
        message = next((m for m in (speaker.read() for _ in range(50)) if "result" not in m), {"no error": True})
    finally:
        poison.unlink()
    assert message.get("ok") is False, message  # an error sample, not the samples going on
    assert (message["id"], message["type"]) == (3, "sample")
    assert message["error"]["kind"] == "driver"
    assert "nvidia-smi's output could not be read" in message["error"]["message"]
    assert said in message["error"]["message"]
    while "error" in (message := speaker.read()):
        pass
    assert message["id"] == 3
    assert [gpu["index"] for gpu in message["result"]["gpus"]] == [0, 1]


def test_a_first_query_it_cannot_read_ends_the_bridge_saying_why(
    sshd: SshdServer,  # noqa: F811 - the fixture, as a parameter
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node without Python whose nvidia-smi prints a CR in a field: down with the reason, not "did not answer"."""
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    poison = garbling_smi(sshd, tmp_path, CR_IN_FIELD)
    poison.touch()
    spec = sshd.node("bare", sshd.write_known_hosts(tmp_path / "kh"), python="/nonexistent/python3")
    transport = SshTransport.open(spec, "lab", OPTIONS)
    try:
        with pytest.raises(NodeError) as failed:
            transport.start_agent(60, zipapp=stand_in_zipapp(tmp_path, "raise SystemExit(3)"))
    finally:
        transport.close()
    assert failed.value.kind == "driver"
    assert "nvidia-smi's output could not be read (unreadable CSV: new-line character" in failed.value.message
