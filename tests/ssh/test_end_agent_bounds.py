"""Ending an agent whose session failed costs the link's teardown no more than the kill's own bound.

The first version waited a second for an exit that a failed session never gives, then ran `kill -KILL` through
`SshConnection.run`, whose channel open waits the full channel timeout (10 s): on a silent connection, the likelier
cause of a stall, every reconnect came 13-22 s late. These doubles stand in for our own connection and channel (not
paramiko's): what matters is which bounds `_end_agent` asks for. The kill itself is tested over a real sshd in
tests/controller/test_collector_ssh.py (a SIGSTOPped agent is gone after its session is rebuilt).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, cast

from factoryctl.errors import NodeError
from factoryctl.transport import ssh_node


@dataclass
class Channel:
    """The agent's channel: no exit status arrives (a stopped agent, or a dead connection)."""

    waits: list[float] = field(default_factory=list)
    closed: bool = False
    status_event: Any = None
    remote_chanid: int = 0  # for the KILL signal request, which a channel of no transport never sends

    def __post_init__(self) -> None:
        outer = self

        class Recording(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                outer.waits.append(0.0 if timeout is None else timeout)
                return False

        self.status_event = Recording()

    def exit_status_ready(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


@dataclass
class Connection:
    """A connection that never answers: each channel open is refused after recording its bound."""

    opens: list[float | None] = field(default_factory=list)

    def channel(self, timeout: float | None = None) -> None:
        self.opens.append(timeout)
        raise NodeError("n1", "lost", "the connection to n1 is lost")


@dataclass
class Session:
    shutdown_answered: bool
    hello_info: dict[str, Any] = field(default_factory=lambda: {"pid": 4242})


def end(answered: bool) -> tuple[Channel, Connection]:
    chan, connection = Channel(), Connection()
    ssh_node._end_agent(cast("Any", chan), cast("Any", connection), cast("Any", Session(answered)))
    return chan, connection


def test_an_agent_that_did_not_answer_shutdown_is_killed_at_once_within_the_kills_bound() -> None:
    chan, connection = end(answered=False)
    assert chan.waits == [0.0]  # no grace: it has exited already, or never will
    assert connection.opens == [ssh_node.AGENT_KILL_TIMEOUT_S]  # not the 10 s channel timeout
    assert chan.closed


def test_an_agent_that_answered_shutdown_gets_its_second_to_exit_first() -> None:
    chan, connection = end(answered=True)
    assert chan.waits[0] == ssh_node.AGENT_EXIT_GRACE_S
    assert connection.opens == [ssh_node.AGENT_KILL_TIMEOUT_S]
    assert chan.closed
