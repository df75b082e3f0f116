"""`nodes trust` words a CHANGED host key as every other command does: one sentence, one hint.

It said `host key CHANGED for [host]:port (recorded ...)` with a hint of its own ("rerun with --replace") while
`exec`, `nodes list` and the controller said `HOST KEY CHANGED for [host]:port: now TYPE FP, recorded ...` and
named the `nodes trust NODE --replace` command: the same key read two ways.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from sshd_fixture import SshdServer


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CHANGED" in line or line.startswith("hint:")]


def test_trust_words_a_changed_key_as_exec_does(cli, sshd: SshdServer, tmp_path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "old")], check=True)
    kind, blob = (tmp_path / "old.pub").read_text().split()[:2]
    known_hosts = tmp_path / "kh"
    known_hosts.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1}\n")
    trusted = cli("--config", config, "nodes", "trust", "n1", "--yes")
    executed = cli("--config", config, "exec", "n1", "--", "true")
    assert trusted.exit_code == 4
    said = _error_lines(trusted.stderr)
    assert any(f"HOST KEY CHANGED for [127.0.0.1]:{sshd.port}: now ssh-" in line for line in said), trusted.stderr
    assert any("`factoryctl nodes trust n1 --replace`" in line for line in said), trusted.stderr
    assert said == _error_lines(executed.stderr)
