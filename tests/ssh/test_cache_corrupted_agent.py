"""A cached agent damaged on the node but of the right size is replaced, not run again and again (real sshd).

The reuse check used to compare the size only, so a zipapp overwritten with other bytes of the same length (a disk
or copy error) failed every start with Python's `SyntaxError: Non-UTF-8 code ...` until someone deleted it by hand,
and `nodes check` then pointed back at itself. Now the sha256 of the cached file is compared with the local one in
the probe that already checks the cache; a node without sha256sum, shasum or openssl falls back to the size, and
`nodes check` then names the file to remove.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cached_agent import remote_name

from factoryctl.errors import ExitCode
from factoryctl.transport.bundle import agent_zipapp

NODES = "  sim1: {host: 127.0.0.1, sim: h100-sxm, gpus: 1}\n"
HASH_TOOLS = ("sha256sum", "shasum", "openssl")


@pytest.fixture(params=["sftp", "no-sftp"])
def server(request, sshd, sshd_factory):
    """Both ways of shipping the agent (SFTP, and `cat >` without it) check the content alike."""
    return sshd if request.param == "sftp" else sshd_factory(sftp=False)


def write_config(tmp_path: Path, server) -> str:
    """factory.yaml for one simulated node on `server` (its host key trusted); the cache is the suite's temp dir."""
    hosts = server.write_known_hosts(tmp_path / "known_hosts_server")
    return server.write_factory(tmp_path / "factory.yaml", hosts, NODES)


def gpus(cli, config: str):
    return cli("--config", config, "gpus", "sim1", "-o", "json", "--timeout", "60")


def corrupt(agent: Path) -> bytes:
    """Overwrite the cached agent in place with random bytes of the same size (owner and mode unchanged)."""
    size = agent.stat().st_size
    garbage = b"\xff" + os.urandom(size - 1)  # not UTF-8 from the first byte: Python's SyntaxError of the finding
    with agent.open("r+b") as out:
        out.write(garbage)
    assert agent.stat().st_size == size
    return garbage


def test_a_damaged_cached_agent_of_the_right_size_is_uploaded_again(cli, tmp_path, remote_cache, server):
    config = write_config(tmp_path, server)
    assert gpus(cli, config).exit_code == 0
    agent = remote_cache / remote_name(agent_zipapp())
    corrupt(agent)
    r = gpus(cli, config)
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["node"] == "sim1"
    assert agent.read_bytes() == agent_zipapp().read_bytes()
    assert not stat.S_IMODE(agent.stat().st_mode) & 0o077
    assert not list(remote_cache.glob("*.part"))


def test_an_intact_cached_agent_is_still_reused(cli, tmp_path, remote_cache, server):
    config = write_config(tmp_path, server)
    assert gpus(cli, config).exit_code == 0
    agent = remote_cache / remote_name(agent_zipapp())
    first = agent.stat().st_mtime_ns
    assert gpus(cli, config).exit_code == 0
    assert agent.stat().st_mtime_ns == first


@pytest.fixture(params=[True, False], ids=["sftp", "no-sftp"])
def hashless(request, sshd_factory):
    """A node where sha256sum, shasum and openssl are missing (shadowed on its PATH by `exit 127`, as sh says)."""
    server = sshd_factory(sftp=request.param)
    for tool in HASH_TOOLS:
        shim = server.bin_dir / tool
        shim.write_text(f"#!/bin/sh\necho 'sh: 1: {tool}: not found' >&2\nexit 127\n")
        shim.chmod(0o755)
    return server


def test_without_a_hash_tool_the_size_decides_and_nodes_check_names_the_file(cli, tmp_path, remote_cache, hashless):
    config = write_config(tmp_path, hashless)
    assert gpus(cli, config).exit_code == 0
    agent = remote_cache / remote_name(agent_zipapp())
    first = agent.stat().st_mtime_ns
    assert gpus(cli, config).exit_code == 0
    assert agent.stat().st_mtime_ns == first  # no tool: reused on its size, not uploaded on every start
    garbage = corrupt(agent)
    r = gpus(cli, config)
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert "SyntaxError" in r.json()["errors"][0]["message"]
    assert agent.read_bytes() == garbage
    r = cli("--config", config, "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (step,) = [s for s in r.json()["items"][0]["steps"] if s["step"] == "agent"]
    assert step["status"] == "fail"
    assert "SyntaxError" in step["detail"]
    assert f"rm -- {agent}" in step["fix"]
    assert "nodes check" not in step["fix"]  # it used to send the operator back to the command they just ran
    agent.unlink()  # what the hint says
    assert gpus(cli, config).exit_code == 0
    assert agent.read_bytes() == agent_zipapp().read_bytes()


def test_an_agent_known_whole_that_dies_is_not_blamed_on_its_file(cli, tmp_path, remote_cache, server):
    """A node whose Python runs `-c` but dies on the agent: the hint points at Python, not at the file."""
    shim = tmp_path / "python-shim"
    shim.write_text('#!/bin/sh\n[ "$1" = -c ] && exec python3 "$@"\necho "ImportError: broken" >&2\nexit 1\n')
    shim.chmod(0o755)
    hosts = server.write_known_hosts(tmp_path / "known_hosts_server")
    config = server.write_factory(
        tmp_path / "factory.yaml", hosts, NODES.replace("gpus: 1", f"gpus: 1, python: {shim}")
    )
    for how in ("was uploaded just now", "matches this factoryctl's (sha256)"):
        r = gpus(cli, config)
        assert r.exit_code == ExitCode.FAILURE, r.stderr
        assert "ImportError: broken" in r.json()["errors"][0]["message"]
        assert f"hint: the agent's file {how}, so it is whole: the error comes from {shim} on the node" in r.stderr
        assert "rm --" not in r.stderr
