"""A request that cannot be written because the connection is gone fails as the lost connection, not as the agent.

The session's reader already reported a channel cut by a dead connection as `connection lost to user@host:port`
(kind `refused`, asked of the transport's `cut_off`), but a request written to it first, before the reader noticed,
failed as `agent`: "cannot write to the agent (Socket is closed)". Both ends now ask `cut_off` alike. The agent's
input here is a real pipe whose reader is gone (a write raises BrokenPipeError, as a closed channel raises OSError);
its output stays open and silent, so only the write can fail the session.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from factoryctl.errors import NodeError
from factoryctl.transport.session import AgentSession

LOST = NodeError("n1", "refused", "connection lost to root@127.0.0.1:2222", "is the node up and sshd running?")


@pytest.fixture
def session_on_pipes() -> Iterator[Callable[[NodeError | None], AgentSession]]:
    """A session whose agent's stdin has lost its reader (writes fail) and whose stdout stays silent (reads wait).

    `cut_off` answers what it is given. At the end its stdout is closed by its writer, so the reader ends.
    """
    made: list[tuple[AgentSession, int]] = []

    def make(lost: NodeError | None) -> AgentSession:
        stdin_read, stdin_write = os.pipe()
        stdout_read, stdout_write = os.pipe()
        os.close(stdin_read)
        stdin, stdout = os.fdopen(stdin_write, "wb", buffering=0), os.fdopen(stdout_read, "rb")
        session = AgentSession("n1", stdin, stdout, cut_off=lambda: lost)
        made.append((session, stdout_write))
        return session

    yield make
    for session, stdout_write in made:
        os.close(stdout_write)
        session.close()


def test_a_write_to_a_lost_connection_is_the_lost_connection(
    session_on_pipes: Callable[[NodeError | None], AgentSession],
) -> None:
    session = session_on_pipes(LOST)
    with pytest.raises(NodeError) as caught:
        session.request("sample", timeout=5)
    assert caught.value is LOST, caught.value.message
    assert session.failure is LOST


def test_a_write_to_an_agent_that_exited_still_says_so(
    session_on_pipes: Callable[[NodeError | None], AgentSession],
) -> None:
    session = session_on_pipes(None)  # the connection is fine (or there is none): the agent is the problem
    with pytest.raises(NodeError) as caught:
        session.request("sample", timeout=5)
    assert caught.value.kind == "agent"
    assert caught.value.message.startswith("cannot write to the agent ([Errno 32] Broken pipe)"), caught.value.message
