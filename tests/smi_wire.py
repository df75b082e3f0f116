"""The agent protocol spoken to an `SmiBridge` line by line, for the nvidia-smi fallback's tests.

Those tests talk to the bridge itself, without an `AgentSession`, to see each reply as the bridge wrote it; this is
the one copy of how they do it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from factoryctl.sim.state import SimNode
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

#: How long to wait for a reply that must come: generous, never a measure of how fast.
WAIT_S = 60.0

#: The nvidia-smi of node `bare` (factory `lab`) without Python: the simulated driver's nvidia-smi on its state.
SHIM = """#!{python} -B
import sys
from factoryctl.sim import smi
sys.exit(smi.main(["--node", "bare", "--factory", "lab", "--state-dir", {state!r}, *sys.argv[1:]]))
"""
OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


class Wire:
    """The agent protocol spoken to a bridge line by line, as the session would (docs/agent-protocol.md)."""

    def __init__(self, bridge: SmiBridge) -> None:
        self._requests, replies = bridge.serve()
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, args=(replies,), daemon=True).start()

    def _read(self, replies: IO[bytes]) -> None:
        for raw in replies:
            self._lines.put(json.loads(raw))

    def send(self, **request: Any) -> None:
        """Write one request line (its fields as keyword arguments)."""
        self._requests.write((json.dumps(request) + "\n").encode())
        self._requests.flush()

    def read(self) -> dict[str, Any]:
        """The next line the bridge wrote (a reply, the hello, or a stream's sample), within WAIT_S."""
        return self._lines.get(timeout=WAIT_S)

    def ask(self, **request: Any) -> dict[str, Any]:
        """Send a request and read the next line."""
        self.send(**request)
        return self.read()

    def close(self) -> None:
        """Close the bridge's input, as a session ending does."""
        self._requests.close()


@contextlib.contextmanager
def bare_bridge(server: Any, tmp_path: Path) -> Iterator[Wire]:
    """A bridge over `server` (an sshd_factory server) to a 2-GPU simulated node without Python, its hello read."""
    state = str(tmp_path / "sim")
    SimNode(state, "bare", "lab", profile="h100-sxm", gpus=2)
    script = server.bin_dir / "nvidia-smi"
    script.write_text(SHIM.format(python=sys.executable, state=state))
    script.chmod(0o755)
    pool = SshPool(OPTIONS)
    try:
        spec = server.node("bare", server.write_known_hosts(tmp_path / "kh"))
        bridge_wire = Wire(SmiBridge("bare", pool.connect(spec), timeout=30))
        assert bridge_wire.read()["type"] == "hello"
        yield bridge_wire
        bridge_wire.close()
    finally:
        pool.close()
