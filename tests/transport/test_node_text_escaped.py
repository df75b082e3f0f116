"""Node text inside an error's message is escaped one way everywhere: in JSON and stored events too, not only on stderr.

The agent's garbage was quoted by `repr` (`\\x1b`) while its last words on stderr were carried raw (ESC, BEL), so
`jq -r .errors[].message` wrote them to a terminal.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from factoryctl.transport.session import AgentSession

_RAW_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def test_an_evil_agents_garbage_and_last_words_are_escaped_alike_in_json(cli: Any, tmp_path: Path) -> None:
    python = tmp_path / "evil.sh"
    python.write_text(
        "#!/bin/sh\n"
        "printf '\\033]0;PWNED\\007\\033[31mred agent\\033[0m says\\033[2J hi\\n' >&2\n"
        "printf 'not json \\033[41mX\\033[0m\\n'\n"
        "exit 3\n"
    )
    python.chmod(0o755)
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: t\nnodes:\n  evil: {{transport: local, python: {python}, sim: {{gpus: 1}}}}\n")
    result = cli("--config", str(config), "gpus", "evil", "-o", "json")
    assert result.exit_code == 1, result.stderr
    messages = [error["message"] for error in json.loads(result.stdout)["errors"]]
    assert messages, result.stdout
    for message in messages:
        assert not _RAW_CONTROL.search(message), message
    assert "'not json \\x1b[41mX\\x1b[0m'" in messages[0]
    assert "its last words: \\x1b]0;PWNED\\x07\\x1b[31mred agent" in messages[0]
    assert "\\x1b]0;PWNED\\x07" in result.stderr  # the display does not escape it a second time
    assert "\\\\x1b" not in result.stderr


def test_an_agents_error_message_is_escaped_in_the_node_error() -> None:
    session = AgentSession("n1", io.BytesIO(), io.BytesIO())
    failed = session._node_error("sample", {"kind": "driver", "message": "bad \x1b]0;PWNED\x07 thing"})
    assert not _RAW_CONTROL.search(failed.message), failed.message
    assert "bad \\x1b]0;PWNED\\x07 thing" in failed.message


def test_a_python_that_fails_on_the_node_is_quoted_escaped_in_nodes_check() -> None:
    """The SSH python step's error carried the node's stderr raw (ESC, BEL, a newline) into its JSON message."""
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.base import CommandResult
    from factoryctl.transport.diagnose import _python_step, _Walk

    spec = NodeSpec(name="n1", host="n1")
    error = _python_step(_Walk("n1"), spec, CommandResult(1, b"", b"\x1b]0;pwned\x07bad\nline2"))
    assert error is not None
    assert not any(ord(c) < 32 for c in error.message), error.message
    assert error.message.startswith(f"{spec.python} is not usable: \\x1b]0;pwned\\x07bad")
