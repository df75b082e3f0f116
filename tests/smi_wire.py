"""The agent protocol spoken to an `SmiBridge` line by line, for the nvidia-smi fallback's tests.

Those tests talk to the bridge itself, without an `AgentSession`, to see each reply as the bridge wrote it; this is
the one copy of how they do it.
"""

from __future__ import annotations

import json
import queue
import threading
from typing import IO, Any

from factoryctl.transport.smi import SmiBridge

#: How long to wait for a reply that must come: generous, never a measure of how fast.
WAIT_S = 60.0


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
