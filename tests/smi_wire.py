"""The agent protocol spoken to an `SmiBridge` line by line, for the nvidia-smi fallback's tests.

Those tests talk to the bridge itself, without an `AgentSession`, to see each reply as the bridge wrote it; this is
the one copy of how they do it.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
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
        self.send_line(json.dumps(request))

    def send_line(self, line: str) -> None:
        """Write `line` as it is, also when it is no JSON object."""
        self._requests.write((line + "\n").encode())
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


def answers_with_clock(
    send: Callable[[str], None], read: Callable[[], dict[str, Any]], lines: list[str]
) -> list[dict[str, Any]]:
    """The answer to each line, each followed by a `clock` whose reply must come too (the server still serves)."""
    answers = []
    for number, line in enumerate(lines):
        send(line)
        send(json.dumps({"id": 1000 + number, "op": "clock"}))
        answers.append(read())
        clock = read()
        assert (clock["id"], clock["ok"]) == (1000 + number, True), clock
    return answers


def agent_answers(tmp_path: Path, lines: list[str]) -> list[dict[str, Any]]:
    """The real agent's answers to `lines` (`answers_with_clock`), on a simulated node like `bare_bridge`'s."""
    argv = [sys.executable, "-m", "factoryctl.agent", "--node", "bare", "--sim", "h100-sxm", "--gpus", "2"]
    argv += ["--state-dir", str(tmp_path / "agent-state")]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1) as agent:
        assert agent.stdin is not None
        assert agent.stdout is not None
        stdin, stdout = agent.stdin, agent.stdout

        def send(line: str) -> None:
            stdin.write(line + "\n")
            stdin.flush()

        assert json.loads(stdout.readline())["type"] == "hello"
        answers = answers_with_clock(send, lambda: json.loads(stdout.readline()), lines)
        stdin.close()
        assert agent.wait(timeout=WAIT_S) == 0
    return answers
