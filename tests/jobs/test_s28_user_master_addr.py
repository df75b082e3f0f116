"""MASTER_ADDR is rank 0's node as the other ranks reach it: the address its SSH connection resolves, not its name.

The quick start's node `gpu01: {sim: h100-sxm}` is reached through `~/.ssh/config` (`Host gpu01`, `HostName
127.0.0.1`, `Port N`): `gpu01` resolves nowhere else, so a gang with rank 0 there gave every other rank a
MASTER_ADDR it could not reach. `nodes list -o wide` showed the same name under HOST while PORT came from the SSH
config. Real sshd, real agents on the simulated driver, real store.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from sshd_fixture import SshdServer, free_port, sshd  # noqa: F401 - the session's sshd fixture
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.jobs.launch import master_address
from factoryctl.jobs.logs import cursors_for, labelled, read_more
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec, JobState, Rank
from factoryctl.store.sqlite import Store

#: A rank that says which rank it is and the MASTER_ADDR it was given.
SAYS = "import os; e = os.environ; print('rank', e['RANK'], 'master', e['MASTER_ADDR'])"


def _ssh_config(home: Path, text: str) -> None:
    (home / ".ssh").mkdir(mode=0o700, exist_ok=True)
    (home / ".ssh" / "config").write_text(text)


def _factory(tmp_path: Path, nodes: str, ssh: str = "") -> Any:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: ma\nstate_dir: {tmp_path / 'state'}\n{ssh}nodes:\n{nodes}")
    return load_config(path)


def _job(*nodes: str) -> Job:
    ranks = tuple(Rank(rank=i, node=node, gpus=(0,)) for i, node in enumerate(nodes))
    return Job("j1", JobSpec(len(nodes), command=("true",)), 0.0, JobState.STARTING, ranks=ranks)


def test_master_addr_is_the_hostname_ssh_config_gives_rank_0s_node(tmp_path: Path, isolated_home: Path) -> None:
    """~/.ssh/config's HostName; factory.yaml's `host` wins, as for the connection; else the name, as ssh takes it."""
    _ssh_config(isolated_home, "Host gpu01 10.0.0.12\n  HostName 127.0.0.1\n  Port 2222\n")
    nodes = "  gpu01: {sim: h100-sxm}\n  gpu02: {host: 10.0.0.12, gpus: 8}\n  gpu03: {gpus: 8}\n"
    config = _factory(tmp_path, nodes + "  ws: {transport: local, sim: h100-sxm}\n")
    assert master_address(config, _job("gpu01", "ws")) == "127.0.0.1"
    assert master_address(config, _job("gpu02", "gpu01")) == "127.0.0.1"  # its host, which ~/.ssh/config resolves
    assert master_address(config, _job("gpu03", "gpu01")) == "gpu03"  # nothing resolves it further


def test_master_addr_behind_a_proxyjump_is_the_node_address_not_the_jump_host(
    tmp_path: Path, isolated_home: Path
) -> None:
    """The jump host reaches the node at its HostName: so, in the usual cluster, do the other nodes."""
    _ssh_config(
        isolated_home, "Host bastion\n  HostName 203.0.113.5\nHost gpu01\n  HostName 10.1.0.11\n  ProxyJump bastion\n"
    )
    config = _factory(tmp_path, "  gpu01: {gpus: 8}\n  gpu02: {gpus: 8}\n")
    assert master_address(config, _job("gpu01", "gpu02")) == "10.1.0.11"


def test_nodes_wide_shows_the_host_the_connection_goes_to(cli: Any, tmp_path: Path, isolated_home: Path) -> None:
    port = free_port()  # nothing listens: the row is the inventory's, whether or not the node answers
    _ssh_config(isolated_home, f"Host gpu01\n  HostName 127.0.0.1\n  Port {port}\n")
    config = _factory(
        tmp_path, "  gpu01: {sim: h100-sxm}\n  ws: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    result = cli("--config", str(config.path), "nodes", "list", "-o", "json", "--timeout", "5")
    rows = {item["node"]: (item["host"], item["port"]) for item in json.loads(result.stdout)["items"]}
    assert rows == {"gpu01": ("127.0.0.1", port), "ws": ("ws", None)}


def test_a_gang_from_an_ssh_config_alias_gets_an_address_every_rank_reaches(
    cli: Any,
    sshd: SshdServer,  # noqa: F811 - the session's sshd fixture
    tmp_path: Path,
    isolated_home: Path,
) -> None:
    """The quick start's gpu01 (an alias of this machine's sshd) and ws (local): a 16-GPU job on both."""
    known = sshd.write_known_hosts(tmp_path / "known_hosts")
    _ssh_config(isolated_home, f"Host gpu01\n  HostName 127.0.0.1\n  Port {sshd.port}\n")
    ssh = f"ssh: {{user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {known}}}\n"
    nodes = (
        "  gpu01: {sim: {profile: h100-sxm, gpus: 8}}\n  ws: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
    )
    config = _factory(tmp_path, nodes, ssh)
    swept = cli("--config", str(config.path), "telemetry", "collect", "--once")
    assert swept.exit_code == 0, swept.stderr
    store = Store(config.store_path)
    try:
        spec = JobSpec(16, name="g", user="ana", command=("python3", "-c", SAYS), nodes=("gpu01", "ws"))
        store.add_job(Job("g1", spec, time.time()))

        def done() -> bool:
            run_tick(config, store)
            return store.job("g1").state.terminal  # type: ignore[union-attr]

        wait_for(done, what="job g1 ended", poll_s=0.2)
        job = store.job("g1")
        assert job is not None
        assert job.state is JobState.SUCCEEDED, job.reason
        cursors = cursors_for(job)
        assert read_more(config, job, cursors) == []
        assert [rank.node for rank in job.ranks] == ["gpu01", "ws"]  # rank 0 on the SSH node
        assert sorted(labelled(cursors)) == ["0: rank 0 master 127.0.0.1", "1: rank 1 master 127.0.0.1"]
    finally:
        store.close()
