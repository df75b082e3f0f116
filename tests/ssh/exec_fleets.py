"""Two nodes, n01 and n02, on either transport: for exec tests that hold for local and SSH nodes alike.

Import the fixture into a test module (`from exec_fleets import Fleet, fleet  # noqa: F401`); every test that takes
`fleet` then runs once on two `transport: local` nodes and once on two nodes of the session's real sshd.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Fleet:
    """A factory.yaml with the nodes n01 and n02, all of one transport."""

    transport: str
    config: str
    #: How long a stopped command's process group may take to end (root's SSH sessions: at their next write).
    gone_within: float


@pytest.fixture(params=["local", pytest.param("ssh", marks=pytest.mark.sshd)])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Fleet:
    """n01 and n02 as local nodes, then as nodes of the session sshd (started only for those)."""
    path = tmp_path / "factory.yaml"
    if request.param == "local":
        path.write_text("name: lab\nnodes:\n  n[01-02]: {transport: local}\n")
        return Fleet("local", str(path), gone_within=10.0)
    sshd = request.getfixturevalue("sshd")
    known_hosts = request.getfixturevalue("known_hosts")
    return Fleet("ssh", sshd.write_factory(path, known_hosts, "  n[01-02]: {host: 127.0.0.1}\n"), gone_within=15.0)
