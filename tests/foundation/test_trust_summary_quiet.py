"""`nodes trust`'s closing summary (`recorded 1 host key(s) for 2 nodes`) is said on stderr, and not under -q.

It was printed on stdout after the table, and -q kept it, where docs/cli.md drops closing summaries under -q (as
`telemetry collect` does with its `stored ...` line): a provisioning script's `-q nodes trust --yes` got it mailed
by cron. Against a real OpenSSH sshd on 127.0.0.1 (tests/sshd_fixture.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sshd_fixture import sshd  # noqa: F401 - the fixture

NODES = "  n[1-2]: {host: 127.0.0.1}\n"  # one sshd behind both: one key for two nodes


def test_the_summary_goes_to_stderr(cli: Any, tmp_path: Path, sshd: Any) -> None:  # noqa: F811 - the fixture
    known = tmp_path / "kh"
    result = cli("--config", sshd.write_factory(tmp_path / "factory.yaml", known, NODES), "nodes", "trust", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "recorded 1 host key(s) for 2 nodes\n" in result.stderr
    assert "recorded" not in result.stdout
    assert result.stdout.startswith("NODE")
    assert "trusted" in result.stdout
    assert len(known.read_text().splitlines()) == 1


def test_q_drops_the_summary_and_keeps_the_table(cli: Any, tmp_path: Path, sshd: Any) -> None:  # noqa: F811
    known = tmp_path / "kh"
    config = sshd.write_factory(tmp_path / "factory.yaml", known, NODES)
    result = cli("--config", config, "-q", "nodes", "trust", "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "recorded" not in result.stdout
    assert "trusted" in result.stdout
    assert len(known.read_text().splitlines()) == 1  # -q says less; it records the same
