"""known_hosts wildcards (`*`, `?`, `!`) match as OpenSSH's match_pattern does, in time linear in the line's length.

Each `*` used to become a regex `.*`, and a line with a run of them (`[******************x`) made every lookup
backtrack exponentially: `nodes trust` took 69.5 s against 18 stars, and any connection paid it for every node. The
slow cases run in a process of their own with a timeout: at these sizes the regex would take hours, the matcher
well under a second, so the timeout is a bound, not a measured time.
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import run_cli
from hypothesis import given
from hypothesis import strategies as st

from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, wildcard_matches

KEY = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"k" * 36).decode()
#: Patterns that made the regex backtrack: a run of stars, and star-question pairs, each before a letter no name has.
SLOW_PATTERNS = ("[" + "*" * 40 + "x", "*?" * 30 + "x")
#: What a lookup against SLOW_PATTERNS may take, process start included: hours with the regex.
TIMEOUT_S = 90


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("gpu*", "gpu01", True),
        ("gpu*", "gpu", True),
        ("gpu*", "gp", False),
        ("GPU?1", "gpu01", True),
        ("gpu?1", "gpu1", False),
        ("*.example.org", "n1.example.org", True),
        ("*.example.org", "example.org", False),
        ("[10.0.0.*]:2222", "[10.0.0.5]:2222", True),
        ("[10.0.0.*]:2222", "[10.0.0.5]:22", False),
        ("***", "", True),
        ("", "", True),
        ("?", "", False),
        ("a*b*c", "aXbYbZc", True),
        ("a*b*c", "aXbYbZ", False),
        ("*a*a*a", "aaaa", True),
        ("*?*?", "x", False),
    ],
)
def test_wildcards_match_as_openssh(pattern: str, name: str, matches: bool) -> None:
    assert wildcard_matches(pattern.lower(), name.lower()) is matches


def _regex_matches(pattern: str, name: str) -> bool:
    """The old matcher, right but exponential: each `*` a `.*`, each `?` a `.`."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name) is not None


@given(st.text("ab*?", max_size=8), st.text("ab", max_size=8))
def test_the_matcher_agrees_with_a_regex_on_short_patterns(pattern: str, name: str) -> None:
    assert wildcard_matches(pattern, name) is _regex_matches(pattern, name)


def test_negation_and_case_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text(f"GPU*,!gpu1? ssh-ed25519 {KEY}\n")
    known, blob = KnownHosts(path), base64.b64decode(KEY)
    assert known.check("gpu01", 22, "ssh-ed25519", blob) is HostKeyStatus.known
    assert known.check("gpu2", 22, "ssh-ed25519", blob) is HostKeyStatus.known
    assert known.check("gpu13", 22, "ssh-ed25519", blob) is HostKeyStatus.unknown  # `!gpu1?` vetoes the line


def test_a_lookup_against_runs_of_stars_is_not_exponential(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text("".join(f"{pattern} ssh-ed25519 {KEY}\n" for pattern in SLOW_PATTERNS))
    script = (
        "import base64, sys\n"
        "from factoryctl.transport.known_hosts import KnownHosts\n"
        f"blob = base64.b64decode({KEY!r})\n"
        "for port in (22, 2222):\n"
        "    print(KnownHosts(sys.argv[1]).check('gpu-node-017.cluster.example.org', port, 'ssh-ed25519', blob).value)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=TIMEOUT_S, check=True
    )
    assert done.stdout.split() == ["unknown", "unknown"]


def test_connecting_with_such_a_line_in_known_hosts_is_not_slowed(sshd, known_hosts: Path, tmp_path: Path) -> None:
    """The line in the report: the real CLI connects to a real sshd past it, at once."""
    trusted = known_hosts.read_text()
    known_hosts.write_text("".join(f"{pattern} ssh-ed25519 {KEY}\n" for pattern in SLOW_PATTERNS) + trusted)
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n1: {host: 127.0.0.1, sim: h100-sxm}\n")
    result = run_cli("--config", config, "nodes", "check", "n1", timeout=TIMEOUT_S)
    assert result.returncode == 0, result.stderr.decode()
