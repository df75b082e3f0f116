"""`nodes check`'s fixes read right wherever they are printed, and say which command hung.

The agent step's fix said "read the agent's last words in the detail above", also on stderr and in JSON where
nothing is above; a `python:` that hangs failed the python step with "command did not finish within 5 s and was
killed", naming no command; a node without Python got two near-identical fixes, one per step (review hints17,
findings 9 and 11). Real sshd; the node's `python:` is a script on this machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sshd_fixture import SshdServer

#: Hangs whatever it is asked (the version check included); short, so nothing outlives the test for long.
_HANGS = "#!/bin/sh\nexec sleep 20\n"
#: Answers the `-c` version check, hangs as the agent.
_HANGS_AS_AGENT = '#!/bin/sh\nif [ "$1" = "-c" ]; then exec python3 "$@"; fi\nexec sleep 20\n'


def _factory(tmp_path: Path, sshd: SshdServer, known_hosts: Path, python: str) -> str:
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, f"  n1: {{host: 127.0.0.1, python: {python}}}\n")


def _script(tmp_path: Path, text: str) -> str:
    path = tmp_path / "python-standin"
    path.write_text(text)
    path.chmod(0o755)
    return str(path)


def _check(cli: Callable[..., Any], factory: str, *more: str) -> Any:
    return cli("-c", factory, "nodes", "check", "n1", "--timeout", "2", *more)


def test_a_hanging_version_check_is_named_as_such(
    cli: Callable[..., Any], tmp_path: Path, sshd: SshdServer, known_hosts: Path
) -> None:
    python = _script(tmp_path, _HANGS)
    result = _check(cli, _factory(tmp_path, sshd, known_hosts, python), "-o", "json")
    assert result.exit_code == 124
    (error,) = json.loads(result.stdout)["errors"]
    assert (
        error["message"] == f"the version check of `{python}` (its `python:`) did not finish within 2 s and was killed"
    )
    assert f"hint: on the node, run `{python} -V` by hand to see what hangs;" in result.stderr


def test_the_fix_for_an_agent_that_never_says_hello_points_nowhere_in_the_output(
    cli: Callable[..., Any], tmp_path: Path, sshd: SshdServer, known_hosts: Path
) -> None:
    factory = _factory(tmp_path, sshd, known_hosts, _script(tmp_path, _HANGS_AS_AGENT))
    table = _check(cli, factory)
    assert table.exit_code == 124
    (fix,) = [line for line in table.stdout.splitlines() if ": fix: " in line]
    (hint,) = [line for line in table.stderr.splitlines() if line.startswith("hint: ")]
    assert fix.startswith("n1: agent: fix: the agent's last words, if it said any, end the error message;")
    assert hint == "hint: " + fix.removeprefix("n1: agent: fix: ")
    assert "above" not in fix


def test_a_node_without_python_gets_the_python_fix_once(
    cli: Callable[..., Any], tmp_path: Path, sshd: SshdServer, known_hosts: Path
) -> None:
    result = _check(cli, _factory(tmp_path, sshd, known_hosts, "/nonexistent/python3"))
    assert result.exit_code == 1
    fixes = [line for line in result.stdout.splitlines() if ": fix: " in line]
    assert fixes == [
        "n1: python: fix: install python3 (>= 3.9) on the node or set its `python:` in factory.yaml; without it, "
        "nvidia-smi must be on the node's PATH."
    ]
    hints = [line for line in result.stderr.splitlines() if line.startswith("hint: ")]
    assert hints == [fixes[0].replace("n1: python: fix: ", "hint: ")]
