r"""`exec` passes a command's bytes that are not UTF-8 to the node as they are, as ssh does (`echo $'caf\xe9'`).

Python holds such argv bytes as lone surrogates; paramiko encoded the command as strict UTF-8 and failed, which
looked like an internal error. Against a real sshd (the SSH suite's fixture), and the local transport beside it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

#: `caf\xe9` (café in Latin-1) as Python's argv holds it.
LATIN1_WORD = "caf\udce9"
#: Prints the bytes of its first argument in hex, so the check does not depend on how exec decodes the output.
HEX_OF_1 = 'printf %s "$1" | od -An -tx1'


@pytest.fixture
def factory(tmp_path: Path, sshd: Any, known_hosts: Path) -> str:
    nodes = "  n01: {host: 127.0.0.1}\n  ws: {transport: local}\n"
    return str(sshd.write_factory(tmp_path / "factory.yaml", known_hosts, nodes))


@pytest.mark.parametrize("node", ["n01", "ws"])
def test_latin1_bytes_reach_the_command_unchanged(cli: Any, factory: str, node: str) -> None:
    r = cli("--config", factory, "exec", node, "-o", "json", "--", "sh", "-c", HEX_OF_1, "sh", LATIN1_WORD)
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["stdout"].split() == ["63", "61", "66", "e9"]


@pytest.mark.parametrize("node", ["n01", "ws"])
def test_a_command_name_not_in_utf8_is_not_found_like_any_other(cli: Any, factory: str, node: str) -> None:
    r = cli("--config", factory, "exec", node, "-o", "json", "--", "\udcff")
    assert r.exit_code == 127, r.stderr
    doc = r.json()
    assert doc["errors"] == []
    assert doc["items"][0]["exit_code"] == 127
    assert "UnicodeEncodeError" not in r.stderr + r.stdout
