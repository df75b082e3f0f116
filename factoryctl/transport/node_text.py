r"""A node's own text (a line of garbage, its agent's last words on stderr, an error it reports) fit for a message.

A `NodeError`'s message reaches JSON output, the stored events and the controller's log, not only the terminal
summary that escapes it for display: node text inside it carried raw ESC and BEL characters, which `jq -r` then
wrote to a terminal, while the garbage part of the same message was escaped by `repr`. Every part now goes through
one escape, `escape_controls` (`\x1b` for ESC), which escapes an escaped text to itself, so the display's own
escaping does not double it. It also writes a lone surrogate as text (`\xff`): JSON's `\udcff` in an agent's
error decodes to one, and SQLite refused the event quoting it, with every other node's state change of the tick.
"""

from __future__ import annotations

from factoryctl.model.telemetry import escape_controls

#: How much of a line that is not a message is quoted in the error about it.
QUOTED_BYTES = 80


def quoted(raw: bytes) -> str:
    """The start of a line the agent sent, decoded, quoted and its control characters escaped."""
    return f"'{escape_controls(raw[:QUOTED_BYTES].decode('utf-8', 'replace'))}'"


def last_words(tail: str) -> str:
    """The `; its last words: ...` detail of an agent's stderr `tail` (its last line, escaped); empty without one."""
    lines = tail.strip().splitlines()
    return f"; its last words: {escape_controls(lines[-1])}" if lines else ""


def node_said(value: object) -> str:
    """What a node said (an error's message), as text with its control characters and lone surrogates escaped."""
    return escape_controls(str(value))
