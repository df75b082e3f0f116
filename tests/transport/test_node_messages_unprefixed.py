"""A node's error message does not start with the node's name: its `node` says which node it is.

Reviewers found `-o json` listings' `errors` entries worded two ways: a connection failure as `127.0.0.1:1 refused
the connection`, but the agent's, the driver's and a timeout as `n01: the agent did not say hello within 0.1 s.`,
and a lost GPU as `n02: GPU 3 on n02 is lost; ...` (the node named twice). The agent session wrote the node in front
of its messages; now none does, and whatever prints an error for a person (the stderr summary, the CLI's error
boundary) writes the node once in front of it. Real processes speak the protocol here; the CLI runs real agents on
the simulated driver.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.app import _print_error
from factoryctl.errors import NodeError, UsageError
from factoryctl.transport.fanout import as_node_error
from factoryctl.transport.session import AgentSession

HELLO = 'import json, sys\nprint(json.dumps({"type": "hello", "protocol": 1, "backend": "sim"}), flush=True)\n'
#: An agent that answers its first request with `error` (a JSON object), then waits for its input to end.
ANSWERS = HELLO + textwrap.dedent(
    """
    request = json.loads(sys.stdin.readline())
    print(json.dumps({"id": request["id"], "ok": False, "error": ERROR}), flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def agent() -> Iterator[Callable[[str], AgentSession]]:
    """`agent(script)`: an AgentSession of node `n1` over a Python process running `script`."""
    started: list[subprocess.Popen[bytes]] = []

    def run(script: str) -> AgentSession:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        started.append(proc)
        assert proc.stdin is not None
        assert proc.stdout is not None
        return AgentSession("n1", proc.stdin, proc.stdout, on_close=proc.kill)

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def _raised(call: Callable[[], object]) -> NodeError:
    with pytest.raises(NodeError) as caught:
        call()
    return caught.value


def test_no_hello_and_another_protocol_are_said_without_the_node(agent: Callable[[str], AgentSession]) -> None:
    silent = agent("import sys\nsys.stdin.read()\n")
    assert _raised(lambda: silent.wait_hello(0.2)).message == "the agent did not say hello within 0.2 s."
    other = agent(
        'import json, sys\nprint(json.dumps({"type": "hello", "protocol": 99}), flush=True)\nsys.stdin.read()'
    )
    error = _raised(lambda: other.wait_hello(10))
    assert (error.node, error.message) == ("n1", "the agent speaks protocol 99, this factoryctl speaks 1.")


def test_a_request_left_unanswered_and_an_agent_that_exits(agent: Callable[[str], AgentSession]) -> None:
    deaf = agent(HELLO + "sys.stdin.read()\n")
    deaf.wait_hello(10)
    assert _raised(lambda: deaf.request("sample", timeout=0.2)).message == "the agent did not answer `sample` in 0.2 s."
    assert _raised(lambda: deaf.stream(1.0, lambda _: None, timeout=0.2)).message == (
        "the agent did not start streaming."
    )
    gone = agent(HELLO + "sys.stdin.readline()\n")
    gone.wait_hello(10)
    error = _raised(lambda: gone.request("sample", timeout=10))
    assert (error.kind, error.message) == ("agent", "the agent exited.")


@pytest.mark.parametrize(
    ("answer", "kind", "message"),
    [
        (
            {"kind": "driver", "reason": "gpu_lost", "message": "GPU 3 is lost"},
            "driver",
            "GPU 3 is lost",  # the node is the error's `node`, written in front of it once: `n1: GPU 3 is lost`
        ),
        ({"kind": "agent", "message": "boom"}, "agent", "`sample` failed: boom"),
    ],
)
def test_an_error_reply_is_the_agents_sentence_alone(
    agent: Callable[[str], AgentSession], answer: dict[str, str], kind: str, message: str
) -> None:
    session = agent(ANSWERS.replace("ERROR", repr(answer)))
    session.wait_hello(10)
    error = _raised(lambda: session.request("sample", timeout=10))
    assert (error.node, error.kind, error.message) == ("n1", kind, message)


def test_a_refused_request_names_its_node_until_the_fan_out_makes_it_the_nodes_error(
    agent: Callable[[str], AgentSession],
) -> None:
    """A UsageError has no node: its sentence names it; the fan-out's entry for the node then has it as `node`."""
    session = agent(ANSWERS.replace("ERROR", repr({"kind": "usage", "message": "no GPU 9"})))
    session.wait_hello(10)
    with pytest.raises(UsageError) as refused:
        session.request("sample", timeout=10)
    assert refused.value.message == "n1: no GPU 9"
    assert as_node_error("n1", refused.value).as_json() == {"node": "n1", "error": "usage", "message": "no GPU 9"}


def test_a_nodes_error_at_the_cli_boundary_names_the_node_once(capsys: pytest.CaptureFixture[str]) -> None:
    _print_error(NodeError("n1", "timeout", "the agent did not say hello within 2 s.", "raise --timeout."))
    _print_error(NodeError("n1", "agent", "n1 is not connected: no power cap was set.", None))
    _print_error(NodeError("n1", "agent", "n1: closed before its agent was started.", None))
    assert capsys.readouterr().err.splitlines() == [
        "factoryctl: n1: the agent did not say hello within 2 s.",
        "hint: raise --timeout.",
        "factoryctl: n1 is not connected: no power cap was set.",
        "factoryctl: n1: closed before its agent was started.",
    ]


FACTORY = """\
name: lab
nodes:
  n[01-02]: {transport: local, sim: {profile: l40s, gpus: 4}}
  unr: {host: 127.0.0.1, port: 1}
"""


def test_power_set_on_a_lost_gpu_names_the_node_once(cli: Any, tmp_path: Path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text(FACTORY)
    assert cli("--config", str(factory), "sim", "inject", "n02/3", "--lost").exit_code == 0
    result = cli("--config", str(factory), "power", "set", "n01,n02,unr", "--watts", "300", "-o", "json")
    assert result.exit_code == 4, result.stderr
    errors = {e["node"]: e for e in json.loads(result.stdout)["errors"]}
    assert {node: e["error"] for node, e in errors.items()} == {"n02": "driver", "unr": "refused"}
    lost, refused = errors["n02"]["message"], errors["unr"]["message"]
    assert lost == "GPU 3 is lost; nothing was changed"  # the other GPUs are in the hint
    assert refused == "127.0.0.1:1 refused the connection"
    said = [line for line in result.stderr.splitlines() if line.startswith("factoryctl: ")]
    assert f"factoryctl: n02: {lost}" in said
    assert "factoryctl: unr: 127.0.0.1:1 refused the connection" in said


def test_a_local_agent_that_cannot_start_is_said_without_the_node(cli: Any, tmp_path: Path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nnodes:\n  n1: {transport: local, python: /nonexistent/python3}\n")
    result = cli("--config", str(factory), "gpus", "-o", "json")
    assert result.exit_code == 1, result.stderr
    said = "cannot start /nonexistent/python3: No such file or directory."
    assert json.loads(result.stdout)["errors"] == [{"node": "n1", "error": "agent", "message": said}]
    assert f"factoryctl: n1: {said}" in result.stderr.splitlines()


def test_a_node_not_asked_after_an_interrupt_is_said_without_the_node(tmp_path: Path) -> None:
    """`power set -o json` lists it as `{node, error: interrupted, message}` (its stderr line names the node)."""
    from factoryctl.power.limit_audit import RequestTrail
    from factoryctl.store.sqlite import Store

    store = Store(tmp_path / "factory.db")
    try:
        trail = RequestTrail(store, "set", 450.0, None)
        trail.announce(["late"], None)
        trail.finish()
        error = _raised(lambda: trail.asking("late"))
    finally:
        store.close()
    assert error.as_json() == {
        "node": "late",
        "error": "interrupted",
        "message": "not asked: the command was stopped before it connected.",
    }


def test_a_node_named_as_its_host_keeps_its_address_whole(cli: Any, tmp_path: Path) -> None:
    """A node with no `host:` is reached by its name, so its messages begin `localhost:1 ...`: not a prefix."""
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nnodes:\n  localhost: {port: 1}\n")
    result = cli("--config", str(factory), "nodes", "list", "--timeout", "5", "-o", "json")
    assert result.exit_code == 4, result.stderr
    [error] = json.loads(result.stdout)["errors"]
    assert error["message"] == "localhost:1 refused the connection"
    assert "factoryctl: localhost: localhost:1 refused the connection" in result.stderr.splitlines()


def test_a_state_change_and_the_cli_boundary_keep_an_address_that_begins_with_the_node(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import logging

    from factoryctl.store.rows import NodeState
    from factoryctl.telemetry.health import state_event
    from factoryctl.telemetry.state_log import StateLog

    down = NodeState("gpu07", "down", 100.0, None, "banner", "gpu07:22 sent no SSH banner")
    assert state_event(down).message == "gpu07 is down: gpu07:22 sent no SSH banner"
    log = StateLog(logging.getLogger("test"))
    log.change(down)
    log.failure("gpu07", "gpu07:22 sent no SSH banner", logging.WARNING)
    assert [said for *_, said in log.take()] == ["gpu07:22 sent no SSH banner"] * 2
    _print_error(NodeError("gpu07", "banner", "gpu07:22 sent no SSH banner"))
    assert capsys.readouterr().err == "factoryctl: gpu07: gpu07:22 sent no SSH banner.\n"
