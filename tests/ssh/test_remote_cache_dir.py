"""factory.yaml's `ssh.remote_cache_dir`: where the agent goes on the nodes (real sshd, the real agent zipapp)."""

from __future__ import annotations

import json
import secrets
import shutil
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError, ExitCode
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

NODES = "  sim1: {host: 127.0.0.1, sim: h100-sxm, gpus: 1}\n"


@pytest.fixture(autouse=True)
def no_cache_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite points every test at a temp cache through the environment; these tests set it in factory.yaml."""
    monkeypatch.delenv("FACTORYCTL_REMOTE_CACHE", raising=False)


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    def write(cache: str) -> str:
        path = Path(sshd.write_factory(tmp_path / "factory.yaml", known_hosts, NODES))
        text = path.read_text().replace("ssh: {", f"ssh: {{remote_cache_dir: {json.dumps(cache)}, ", 1)
        path.write_text(text)
        return str(path)

    return write


def agents_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("factoryctl-agent-*.pyz"))


def test_the_agent_is_uploaded_to_the_configured_directory(cli, factory, tmp_path):
    cache = tmp_path / "node-cache" / "agents"
    config = factory(str(cache))
    r = cli("--config", config, "gpus", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["node"] == "sim1"
    assert len(agents_in(cache)) == 1
    assert (cache / "sim").is_dir()  # the simulated node's state lives beside its agent
    assert cache.stat().st_mode & 0o777 == 0o700


def test_nodes_check_uses_it_too(cli, factory, tmp_path):
    cache = tmp_path / "checked"
    r = cli("--config", factory(str(cache)), "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    assert r.json()["items"][0]["ok"] is True
    assert len(agents_in(cache)) == 1


def test_a_relative_directory_starts_at_the_login_directory(cli, factory, ssh_node):
    pool = SshPool(SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30))
    try:
        login = Path(pool.connect(ssh_node()).run(["pwd"], timeout=60).stdout.decode().strip())
    finally:
        pool.close()
    relative = f".factoryctl-test-{secrets.token_hex(4)}/agents"
    top = login / relative.split("/")[0]
    try:
        r = cli("--config", factory(relative), "gpus", "sim1", "--timeout", "60")
        assert r.exit_code == 0, r.stderr
        assert len(agents_in(login / relative)) == 1
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_the_environment_variable_still_wins(cli, factory, tmp_path, monkeypatch):
    configured, from_env = tmp_path / "configured", tmp_path / "from-env"
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(from_env))
    r = cli("--config", factory(str(configured)), "gpus", "sim1", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    assert len(agents_in(from_env)) == 1
    assert not configured.exists()


@pytest.mark.parametrize(
    ("value", "position"),
    [('"a\\nb"', "f.yaml:3:21"), ('"cache\\0x"', "f.yaml:3:21"), ('""', "f.yaml:3:21")],
)
def test_a_newline_nul_or_empty_value_is_a_config_error(value, position):
    with pytest.raises(ConfigError) as caught:
        parse_config(f"name: x\nssh:\n  remote_cache_dir: {value}\nnodes: {{a: }}\n", Path("f.yaml"))
    assert caught.value.message.startswith(f"{position}: `ssh.remote_cache_dir`: "), caught.value.message
    assert caught.value.exit_code == ExitCode.CONFIG


def test_the_cli_reports_it_with_exit_3(cli, tmp_path):
    path = tmp_path / "factory.yaml"
    path.write_text('name: x\nssh: {remote_cache_dir: "a\\nb"}\nnodes: {a: }\n')
    r = cli("--config", str(path), "exec", "a", "--", "true")
    assert r.exit_code == 3
    assert r.stderr.startswith(f"factoryctl: {path}:2:25: `ssh.remote_cache_dir`: ")
    assert "newline" in r.stderr
