"""An agent that cannot start gets the hint table's hint (transport/hints.py) from the module that raises it.

`_smi_session` said "install python3 ..., check the NVIDIA driver" and a connection lost while the agent started
said "is the node up?" (a question) while the table, which the controller's readers use, says otherwise: the
same failure had two hints, depending on who read it. Real sshd; the node is this machine, without nvidia-smi.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stand_in_agent import stand_in_zipapp

from factoryctl.errors import NodeError
from factoryctl.transport import hints
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)

#: A node's `python:` that answers the `-c` probes but, started as the agent, kills the sshd process serving its
#: connection (the first `sshd*` above it): the connection is lost while the agent starts.
_DROPS_ITS_CONNECTION = """#!/bin/sh
if [ "$1" = "-c" ]; then exec python3 "$@"; fi
p=$$
while [ "$p" -gt 1 ]; do
  case "$(ps -o comm= -p "$p")" in sshd*) kill -9 "$p"; exec sleep 5;; esac
  p=$(ps -o ppid= -p "$p" | tr -d ' ')
done
"""


def _start_error(ssh_node: Callable[..., Any], tmp_path: Path, python: str) -> NodeError:
    transport = SshTransport.open(ssh_node("n1", python=python), "lab", OPTIONS)
    try:
        with pytest.raises(NodeError) as failed:
            transport.start_agent(5, zipapp=stand_in_zipapp(tmp_path, "pass\n"))
        return failed.value
    finally:
        transport.close()


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="nvidia-smi would stand in for Python")
def test_no_python_and_no_nvidia_smi_gets_the_tables_python_hint(ssh_node: Callable[..., Any], tmp_path: Path) -> None:
    error = _start_error(ssh_node, tmp_path, "/nonexistent/python3")
    assert error.kind == "driver"
    assert error.message.startswith("no usable /nonexistent/python3 for the agent")
    assert error.hint == hints.NO_PYTHON_HINT


def test_a_connection_lost_while_the_agent_starts_gets_the_tables_lost_hint(
    ssh_node: Callable[..., Any], tmp_path: Path
) -> None:
    script = tmp_path / "drops.sh"
    script.write_text(_DROPS_ITS_CONNECTION)
    script.chmod(0o755)
    error = _start_error(ssh_node, tmp_path, str(script))
    assert (error.kind, error.message) == ("refused", "connection lost while starting the agent")
    assert error.hint == hints.LOST_HINT
