"""paramiko's bare EOFError (a connection that went away) is told as a lost connection, never as `EOFError: `.

paramiko raises `EOFError()`, with no text, when the connection under a step goes away; a step that does not catch
it leaves it to the fan-out's classifier, which used to print the class name and an empty message.
"""

from __future__ import annotations

from factoryctl.errors import ExitCode
from factoryctl.transport import hints
from factoryctl.transport.fanout import as_node_error


def test_a_bare_eof_error_is_a_lost_connection_with_its_hint() -> None:
    error = as_node_error("n1", EOFError())
    assert (error.node, error.kind, error.message) == ("n1", "refused", "connection lost to n1")
    assert error.hint == hints.LOST_HINT
    assert error.exit_code == ExitCode.CONNECTION
    assert "EOFError" not in str(error)


def test_an_eof_error_that_says_something_is_still_reported_as_it_is() -> None:
    error = as_node_error("n1", EOFError("EOF when reading a line"))
    assert (error.kind, error.message) == ("agent", "EOFError: EOF when reading a line")
