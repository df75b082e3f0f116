"""AgentSession's job-rank methods over a real SSH connection, to the real agent zipapp on a simulated node.

The agent runs in the node's cache directory with a relative `--state-dir` (docs/ssh.md), so this also shows that
its ranks land under the simulated node's state, whatever directory the wrapper runs in.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import known_hosts, ssh_node, sshd  # noqa: F401
from waiting import wait_for

from factoryctl.agent.ranks import is_process
from factoryctl.errors import UsageError
from factoryctl.model.inventory import SimSpec
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


@pytest.fixture
def remote_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The node's agent cache in the test's directory; every rank recorded under it KILLed afterwards."""
    cache = tmp_path / "remote-cache"
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(cache))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    yield cache
    for record_path in tmp_path.rglob("record.json"):
        record = json.loads(record_path.read_text())
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(record["pgid"], signal.SIGKILL)
        if is_process(record["wrapper_pid"], record["wrapper_start_ticks"]):
            os.kill(record["wrapper_pid"], signal.SIGKILL)


def test_a_rank_launched_over_ssh_is_read_back_by_ranks_and_rank_log(ssh_node: Any, remote_cache: Path) -> None:  # noqa: F811
    transport = SshTransport.open(ssh_node("n1", sim=SimSpec("h100-sxm", 2, 0)), "lab", OPTIONS)
    try:
        session = transport.start_agent(60)
        started = session.launch_rank(
            "j1", 0, ["sh", "-c", "echo rank $FACTORY_X; exit 3"], {"FACTORY_X": "0"}, [1], None
        )
        assert started["already"] is False
        assert session.launch_rank("j1", 0, ["true"], {}, [1], None, timeout=30)["pid"] == started["pid"]
        with pytest.raises(UsageError, match="n1: cannot start the rank: no program no-such-s26 was found"):
            session.launch_rank("j1", 1, ["no-such-s26"], {}, [], None)
        wait_for(lambda: not session.ranks(["j1"])[0]["running"], what="the rank ending")
        (entry,) = session.ranks(None)
        assert (entry["job"], entry["rank"], entry["exit_code"], entry["gpus"]) == ("j1", 0, 3, [1])
        assert session.rank_log("j1", 0, 0, 1024) == {"data": "rank 0\n", "offset": 7, "size": 7}
        assert session.kill_ranks("j1", "TERM") == []
        lasting = session.launch_rank("j2", 0, ["sleep", "300"], {}, [0], "/")
        session.close()
    finally:
        transport.close()
    assert list(remote_cache.glob("sim/lab/n1.jobs/j1/rank-0/output.log"))
    (record,) = remote_cache.glob("sim/lab/n1.jobs/j2/rank-0/record.json")
    assert is_process(lasting["pid"], json.loads(record.read_text())["start_ticks"])  # outlived its SSH session
