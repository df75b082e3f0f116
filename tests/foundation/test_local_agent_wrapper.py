"""A local node's `python:` may be a wrapper script that starts the interpreter as a child (a venv shim, `module
load` and then python). When the agent says nothing in time, the whole wrapper is ended at once: its child used to
keep the agent's stdout open, and `nodes --timeout 2` then waited for that child (30 s with a `sleep 30` inside).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

import pytest
from process_groups import assert_group_gone, group_of
from waiting import wait_for

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport.local import LocalTransport


def silent_wrapper(tmp_path: Path) -> tuple[Path, Path]:
    """A `python` that records its pid, then waits on a child that holds its stdout and never says hello."""
    pidfile = tmp_path / "wrapper.pid"
    script = tmp_path / "slowpy"
    script.write_text(f"#!/bin/sh\necho $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nsleep 600\n")
    script.chmod(0o755)
    return script, pidfile


def test_a_silent_wrapper_is_ended_with_its_children_at_the_hello_timeout(tmp_path: Path) -> None:
    script, pidfile = silent_wrapper(tmp_path)
    node = NodeSpec(name="slowl", host="slowl", transport="local", python=str(script), sim=SimSpec(gpus=1))
    transport = LocalTransport(node, "lab", tmp_path)
    failures: list[NodeError] = []

    def start() -> None:
        with pytest.raises(NodeError) as caught:
            transport.start_agent(0.5)
        failures.append(caught.value)

    worker = threading.Thread(target=start, daemon=True)
    worker.start()
    wait_for(pidfile.exists)
    wrapper = int(pidfile.read_text())
    group = group_of(wrapper)
    try:
        assert group == wrapper  # its own group, which is ended as a whole (not this test's)
        wait_for(lambda: not worker.is_alive(), timeout=20)  # it waited for `sleep 600` before
        assert failures[0].kind == "timeout"
        assert "did not say hello within 0.5 s" in failures[0].message
        assert_group_gone(group)
    finally:
        if group == wrapper:  # if the test failed: the wrapper's group, never this test's own
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        transport.close()
