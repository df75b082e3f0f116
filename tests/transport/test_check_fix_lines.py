"""`nodes check` on a local node fails at the step at fault and gives a fix that is not `nodes check` itself.

A missing interpreter passed the `python` step ("ok ... on this machine") and failed the agent's without a fix; an
agent that sent garbage was told to run `factoryctl nodes check NODE`, the command just run; one that never said
hello got no fix at all. `power set`'s read-step timeout said "reading its GPUs" with no node before it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _factory(tmp_path: Path, python: str) -> str:
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n1: {{transport: local, python: {python}, sim: {{profile: l40s, gpus: 1}}}}\n"
    )
    return str(factory)


def _standin(tmp_path: Path, script: str) -> str:
    python = tmp_path / "python-standin"
    python.write_text(script)
    python.chmod(0o755)
    return str(python)


def _steps(cli: Any, factory: str, *more: str) -> dict[str, dict[str, Any]]:
    result = cli("--config", factory, "nodes", "check", "n1", *more, "-o", "json")
    assert result.exit_code != 0, result.stdout
    [node] = json.loads(result.stdout)["items"]
    return {step["step"]: step for step in node["steps"]}


def test_a_missing_interpreter_fails_the_python_step_with_a_fix(cli: Any, tmp_path: Path) -> None:
    steps = _steps(cli, _factory(tmp_path, "/nonexistent/python3"))
    assert steps["python"]["status"] == "fail", steps
    assert "/nonexistent/python3" in steps["python"]["detail"]
    assert "python:" in steps["python"]["fix"]
    assert steps["agent"]["status"] == "skip"


def test_an_agent_sending_garbage_is_told_to_run_by_hand_not_nodes_check(cli: Any, tmp_path: Path) -> None:
    python = _standin(tmp_path, "#!/bin/sh\necho not json\n")
    steps = _steps(cli, _factory(tmp_path, python))
    assert steps["python"]["status"] == "ok"
    assert steps["agent"]["status"] == "fail"
    fix = steps["agent"]["fix"]
    assert "nodes check" not in fix
    assert f"`{python} " in fix, fix  # the exact command line the agent was started with
    assert "--node n1" in fix


def test_an_agent_that_never_says_hello_gets_a_fix(cli: Any, tmp_path: Path) -> None:
    python = _standin(tmp_path, "#!/bin/sh\nexec sleep 30\n")
    steps = _steps(cli, _factory(tmp_path, python), "--timeout", "2")
    assert steps["agent"]["status"] == "fail"
    assert steps["agent"]["fix"] is not None
    assert f"`{python} " in steps["agent"]["fix"]


def test_a_power_set_read_timeout_says_what_timed_out_and_that_nothing_changed(cli: Any, tmp_path: Path) -> None:
    python = _standin(tmp_path, f'#!/bin/sh\nsleep 30\nexec {sys.executable} "$@"\n')
    factory = _factory(tmp_path, python)
    r = cli("--config", factory, "power", "set", "n1", "--watts", "250", "--timeout", "2", "-o", "json")
    [error] = json.loads(r.stdout)["errors"]
    assert error["message"] == "the agent did not say hello within 2 s; no limit was changed", error
