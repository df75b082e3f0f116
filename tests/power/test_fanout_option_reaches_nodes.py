"""`power set`, `power reset`, `telemetry collect` and `sim inject` take `--fanout`, and it bounds their nodes at once.

They had none, so 256 dead nodes cost (256 / 64) timeouts each, while docs/cli.md told users to raise `--fanout`.
Here every node is a stand-in sshd that accepts and never says a word: each connection waits out `--timeout`, and
the stand-in counts, as it accepts one, how many of the command's connections are open at that moment (those the
command closed are seen closed first: a node's slot is freed only after its connection is closed). Counted, not timed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from silent_listener import listening

NODES = 5


class CountingStandIn:
    """Accepted connections that never get an answer; `most` is the most that were open at once."""

    def __init__(self) -> None:
        self._open: list[socket.socket] = []
        self._closed: list[socket.socket] = []
        self._lock = threading.Lock()
        self.most = 0
        self.accepted = 0

    def accept(self, sock: socket.socket) -> None:
        with self._lock:
            for held in [s for s in self._open if _closed_by_peer(s)]:
                self._open.remove(held)
                self._closed.append(held)
            self._open.append(sock)
            self.accepted += 1
            self.most = max(self.most, len(self._open))

    def close(self) -> None:
        with self._lock:
            for sock in self._open + self._closed:
                sock.close()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the other end closed `sock` (what it sent, its SSH banner, is read and dropped)."""
    while True:
        try:
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True


@contextlib.contextmanager
def hung_fleet(tmp_path: Path) -> Iterator[tuple[Path, CountingStandIn]]:
    """A factory of NODES simulated SSH nodes, all at one stand-in that accepts and never speaks."""
    stand_in = CountingStandIn()
    try:
        with listening(stand_in.accept) as port:
            config = tmp_path / "factory.yaml"
            config.write_text(
                f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
                f"  h[1-{NODES}]: {{host: 127.0.0.1, port: {port}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
            )
            yield config, stand_in
    finally:
        stand_in.close()


COMMANDS = {
    "power set": ["power", "set", "all", "--watts", "500"],
    "power set --clamp": ["power", "set", "all", "--watts", "500", "--clamp"],
    "power reset": ["power", "reset", "all"],
    "telemetry collect": ["telemetry", "collect"],
    "sim inject": ["sim", "inject", "all", "--reset"],
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_fanout_bounds_the_nodes_asked_at_once(cli, tmp_path: Path, command: list[str]) -> None:
    with hung_fleet(tmp_path) as (config, stand_in):
        bounded = cli("--config", str(config), *command, "--timeout", "0.5", "--fanout", "2")
        assert bounded.exit_code == 4, bounded.stderr  # every node failed to connect, as it should
        assert f"h[1-{NODES}] ({NODES}):" in bounded.stderr
    assert stand_in.accepted == NODES
    assert stand_in.most == 2


def test_by_default_the_fanout_takes_every_node_of_a_small_fleet(cli, tmp_path: Path) -> None:
    with hung_fleet(tmp_path) as (config, stand_in):
        result = cli("--config", str(config), "power", "reset", "all", "--timeout", "0.5")
        assert result.exit_code == 4, result.stderr
    assert stand_in.most == NODES
