"""The hints raised in place (not by `hints.hinted`) are the table's: a lost connection, an agent that never said hello.

`lost_connection` asked "is the node up and sshd running?" and `wait_hello` gave no hint at all, while the
controller's readers gave the table's LOST_HINT and AGENT_HANG_HINT for the same failures.
"""

from __future__ import annotations

import os

import pytest

from factoryctl.errors import NodeError
from factoryctl.transport import hints
from factoryctl.transport.session import AgentSession
from factoryctl.transport.ssh import lost_connection


def test_a_lost_connection_gets_the_tables_lost_hint() -> None:
    error = lost_connection("n1", "to root@10.0.0.1:22")
    assert (error.kind, error.message) == ("refused", "connection lost to root@10.0.0.1:22")
    assert error.hint == hints.LOST_HINT


def test_an_agent_silent_before_its_hello_gets_the_find_what_hangs_hint() -> None:
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    session = AgentSession("n7", os.fdopen(stdin_write, "wb", buffering=0), os.fdopen(stdout_read, "rb"))
    try:
        with pytest.raises(NodeError) as failed:
            session.wait_hello(0.1)
        assert failed.value.message == "the agent did not say hello within 0.1 s."
        assert failed.value.hint == hints.AGENT_HANG_HINT.format(node="n7")
        assert "`factoryctl nodes check n7`" in str(failed.value.hint)
    finally:
        os.close(stdout_write)
        session.close()
        os.close(stdin_read)
