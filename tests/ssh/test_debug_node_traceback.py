"""`--debug` shows the traceback of a node's unexpected error, and `nodes check` lists that node on its step.

An unexpected error on one node (a bug, or a library raising what it does not document) is one sentence, `error:
agent`, with the hint "rerun with --debug for details"; `--debug` (or FACTORYCTL_DEBUG=1) must then show where it
came from. The bug stand-in is raised while authenticating against a real sshd (paramiko itself is not mocked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer

from factoryctl.transport import ssh_handshake
from factoryctl.transport.fanout import NODE_TRACEBACKS, as_node_error

BUG = "a bug stand-in raised while authenticating"


@pytest.fixture
def buggy_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every offered key raises what no caller expects."""

    def offer(*_args: object) -> bool:
        raise LookupError(BUG)

    monkeypatch.setattr(ssh_handshake, "_try_key", offer)


@pytest.fixture
def config(sshd: SshdServer, known_hosts: Path, tmp_path: Path) -> str:
    return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  n[1-2]: {host: 127.0.0.1}\n")


@pytest.mark.usefixtures("buggy_auth")
def test_without_debug_the_unexpected_error_is_one_sentence_and_a_hint(cli: Any, config: str) -> None:
    r = cli("--config", config, "exec", "all", "--", "true")
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [
        f"factoryctl: n[1-2] (2): LookupError: {BUG}",
        "hint: rerun with --debug for details.",
    ]


@pytest.mark.usefixtures("buggy_auth")
@pytest.mark.parametrize("how", ["--debug", "FACTORYCTL_DEBUG=1"])
def test_debug_adds_the_traceback_after_the_nodes_error(
    cli: Any, config: str, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if how.startswith("FACTORYCTL_DEBUG"):
        monkeypatch.setenv("FACTORYCTL_DEBUG", "1")
    r = cli(*(["--debug"] if how == "--debug" else []), "--config", config, "exec", "all", "--", "true")
    assert r.exit_code == 1
    lines = r.stderr.splitlines()
    assert lines[:2] == [f"factoryctl: n[1-2] (2): LookupError: {BUG}", "hint: its traceback follows the output."]
    assert lines[2] == "factoryctl: n[1-2] (2): traceback of the unexpected error:"  # the same traceback once
    assert lines[3] == "Traceback (most recent call last):"
    assert 'ssh_handshake.py", line' in r.stderr  # where it was raised
    assert lines[-1] == f"LookupError: {BUG}"
    assert r.stderr.count("Traceback (most recent call last):") == 1


@pytest.mark.usefixtures("buggy_auth")
def test_nodes_check_lists_the_node_with_the_unexpected_error_on_its_step(cli: Any, config: str) -> None:
    r = cli("--config", config, "nodes", "check", "n1", "-o", "json")
    assert r.exit_code == 1, r.stderr
    [item] = r.json()["items"]  # type: ignore[index]
    steps = {s["step"]: (s["status"], s["detail"]) for s in item["steps"]}
    assert steps["host_key"][0] == "ok"
    assert steps["auth"] == ("fail", f"LookupError: {BUG}")
    assert steps["python"][0] == "skip"
    assert "Traceback" not in r.stderr
    debug = cli("--debug", "--config", config, "nodes", "check", "n1")
    assert [line.split()[:3] for line in debug.stdout.splitlines() if line.startswith("n1 ")][4] == [
        "n1",
        "auth",
        "fail",
    ]
    assert "factoryctl: n1: traceback of the unexpected error:" in debug.stderr


def test_tracebacks_are_kept_only_while_asked_and_each_distinct_one_once() -> None:
    def failed(node: str) -> None:
        try:
            raise RuntimeError("same place")
        except RuntimeError as exc:
            as_node_error(node, exc)

    failed("n0")  # not kept: nobody asked
    with NODE_TRACEBACKS.keeping():
        for node in ("n1", "n2", "n1"):  # a node failing again is named once
            failed(node)
        [(nodes, text)] = NODE_TRACEBACKS.taken()
        for i in range(NODE_TRACEBACKS.MAX_KEPT + 5):  # distinct messages: distinct tracebacks, at most MAX_KEPT
            as_node_error(f"m{i}", RuntimeError(f"message {i}"))
        assert len(NODE_TRACEBACKS.taken()) == NODE_TRACEBACKS.MAX_KEPT
    assert nodes == ["n1", "n2"]
    assert text.endswith("RuntimeError: same place\n")
    failed("n3")
    assert NODE_TRACEBACKS.taken() == []
