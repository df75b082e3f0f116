"""The port every transport implements, so collectors, commands and the controller do not care how a node is reached.

`local` runs the agent as a subprocess of this machine; `ssh` runs it over one persistent paramiko connection.
Both hand the agent's stdin/stdout to the same `AgentSession`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from factoryctl.transport.session import AgentSession
from factoryctl.transport.stdin_stream import Stdin


@dataclass(frozen=True)
class CommandResult:
    """What one remote (or local) command produced."""

    exit_code: int
    stdout: bytes
    stderr: bytes


class NodeTransport(Protocol):
    """A way to reach one node: run a command, start the agent, close."""

    def run(self, argv: list[str], timeout: float, stdin: Stdin = None) -> CommandResult:
        """Run argv on the node (quoted with shlex.join where a shell is involved) and wait for it.

        `stdin` is the command's standard input, closed (EOF) after it: bytes, or a `Feed` streamed while the command
        runs (its end never waits for more input); None gives it none (EOF at once).
        """
        ...

    def interrupt(self) -> None:
        """Ctrl-C: stop the commands `run` is running now (SIGINT, then SIGHUP), from another thread."""
        ...

    def start_agent(self, timeout: float) -> AgentSession:
        """Start (shipping first when needed) the node agent and return its session, hello received."""
        ...

    def close(self) -> None:
        """Release connections and processes."""
        ...
