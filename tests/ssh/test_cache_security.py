"""The agent cache on the nodes is trusted only when it is private (real sshd, the real agent zipapp).

Another local user of a node must not be able to get code run as the SSH user by preparing the cache directory or
planting `factoryctl-agent-<hash>.pyz` of the right name and size in it. The tests run sshd as the current user
(root here); a foreign owner is made with chown to `nobody`'s uid when running as root.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from cached_agent import remote_name

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError, ExitCode
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport import ssh_node
from factoryctl.transport.agent_cache import remote_cache_dir
from factoryctl.transport.bundle import agent_zipapp
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

NODES = "  sim1: {host: 127.0.0.1, sim: h100-sxm, gpus: 1}\n"
FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")


@pytest.fixture(autouse=True)
def no_cache_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite points every test at a temp cache through the environment; these tests choose their own."""
    monkeypatch.delenv("FACTORYCTL_REMOTE_CACHE", raising=False)


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    def write(cache: str, server=None, nodes: str = NODES) -> str:
        server = server or sshd
        hosts = known_hosts if server is sshd else server.write_known_hosts(tmp_path / "known_hosts_extra")
        path = Path(server.write_factory(tmp_path / "factory.yaml", hosts, nodes))
        text = path.read_text().replace("ssh: {", f"ssh: {{remote_cache_dir: {json.dumps(cache)}, ", 1)
        path.write_text(text)
        return str(path)

    return write


@pytest.fixture
def zipapp() -> Path:
    return agent_zipapp()


def plant(directory: Path, zipapp: Path, marker: Path) -> Path:
    """A planted "agent" of the real one's name and size: Python source that leaves `marker` if it ever runs."""
    code = f"open({str(marker)!r}, 'w').write('pwned')\n".encode()
    size = zipapp.stat().st_size
    assert len(code) + 2 < size
    planted = directory / remote_name(zipapp)
    planted.write_bytes(code + b"#" + b"x" * (size - len(code) - 2) + b"\n")
    assert planted.stat().st_size == size
    return planted


def shared_dir(path: Path, mode: int = 0o777) -> Path:
    path.mkdir(parents=True)
    path.chmod(mode)  # mkdir's mode is cut by the umask
    return path


def test_a_world_writable_cache_with_a_planted_agent_is_refused(cli, factory, tmp_path, zipapp):
    cache = shared_dir(tmp_path / "shared" / "factoryctl")
    marker = tmp_path / "marker"
    planted = plant(cache, zipapp, marker)
    before = planted.read_bytes()
    r = cli("--config", factory(str(cache)), "gpus", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (error,) = r.json()["errors"]
    assert error["error"] == "agent"
    assert error["message"] == (
        f"the agent cache directory {cache} on the node is writable by group or others (mode 0777), "
        "so another user could replace the agent."
    )
    assert not marker.exists()
    assert planted.read_bytes() == before  # nothing written into it either
    assert stat.S_IMODE(cache.stat().st_mode) == 0o777  # and not "fixed" behind the operator's back


def test_nodes_check_says_how_to_fix_it(cli, factory, tmp_path, zipapp):
    cache = shared_dir(tmp_path / "g", 0o770)
    r = cli("--config", factory(str(cache)), "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (agent,) = [s for s in r.json()["items"][0]["steps"] if s["step"] == "agent"]
    assert agent["status"] == "fail"
    assert "mode 0770" in agent["detail"]
    assert f"`chmod go-w {cache}`" in agent["fix"]
    assert "ssh.remote_cache_dir" in agent["fix"]


@as_root
def test_a_cache_directory_of_another_user_is_refused(cli, factory, tmp_path, zipapp):
    cache = shared_dir(tmp_path / "theirs", 0o700)
    marker = tmp_path / "marker"
    plant(cache, zipapp, marker)
    os.chown(cache, FOREIGN_UID, FOREIGN_UID)
    r = cli("--config", factory(str(cache)), "gpus", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (error,) = r.json()["errors"]
    assert f"{cache} on the node belongs to uid {FOREIGN_UID}, not to the login user (uid 0)" in error["message"]
    assert not marker.exists()


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_a_group_or_other_writable_cached_agent_is_uploaded_again(cli, factory, tmp_path, zipapp, mode):
    cache = shared_dir(tmp_path / "mine", 0o700)
    marker = tmp_path / "marker"
    planted = plant(cache, zipapp, marker)
    planted.chmod(mode)
    r = cli("--config", factory(str(cache)), "gpus", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    assert not marker.exists()
    assert planted.read_bytes() == zipapp.read_bytes()
    assert not stat.S_IMODE(planted.stat().st_mode) & 0o022
    assert not list(cache.glob("*.part"))


@as_root
def test_a_cached_agent_of_another_user_is_uploaded_again(cli, factory, tmp_path, zipapp):
    cache = shared_dir(tmp_path / "mine", 0o700)
    marker = tmp_path / "marker"
    planted = plant(cache, zipapp, marker)
    planted.chmod(0o644)
    os.chown(planted, FOREIGN_UID, FOREIGN_UID)
    r = cli("--config", factory(str(cache)), "gpus", "sim1", "--timeout", "60")
    assert r.exit_code == 0, r.stderr
    assert not marker.exists()
    assert planted.read_bytes() == zipapp.read_bytes()
    assert planted.stat().st_uid == os.geteuid()


def test_a_private_cache_and_agent_are_reused_as_they_are(cli, factory, tmp_path, zipapp):
    cache = shared_dir(tmp_path / "kept", 0o750)  # not writable by others: fine, and left as the operator made it
    config = factory(str(cache))
    assert cli("--config", config, "gpus", "sim1", "--timeout", "60").exit_code == 0
    (agent,) = cache.glob("factoryctl-agent-*.pyz")
    assert not stat.S_IMODE(agent.stat().st_mode) & 0o077  # uploaded 0600
    first = agent.stat().st_mtime_ns
    assert cli("--config", config, "gpus", "sim1", "--timeout", "60").exit_code == 0
    assert agent.stat().st_mtime_ns == first  # reused, not uploaded again
    assert stat.S_IMODE(cache.stat().st_mode) == 0o750


class TestWithoutSftp:
    """The `cat >` fallback (no SFTP subsystem) applies the same rules with a shell probe."""

    @pytest.fixture
    def server(self, sshd_factory):
        return sshd_factory(sftp=False)

    def test_a_world_writable_cache_is_refused(self, cli, factory, tmp_path, zipapp, server):
        cache = shared_dir(tmp_path / "shared")
        marker = tmp_path / "marker"
        plant(cache, zipapp, marker)
        sticky = shared_dir(tmp_path / "sticky", 0o1777)
        r = cli("--config", factory(str(sticky), server), "gpus", "sim1", "-o", "json", "--timeout", "60")
        assert "(mode 1777)" in r.json()["errors"][0]["message"]
        r = cli("--config", factory(str(cache), server), "gpus", "sim1", "-o", "json", "--timeout", "60")
        assert r.exit_code == ExitCode.FAILURE, r.stderr
        (error,) = r.json()["errors"]
        assert error["message"] == (
            f"the agent cache directory {cache} on the node is writable by group or others (mode 0777), "
            "so another user could replace the agent."
        )
        assert not marker.exists()

    @as_root
    def test_a_cache_of_another_user_is_refused(self, cli, factory, tmp_path, zipapp, server):
        cache = shared_dir(tmp_path / "theirs", 0o700)
        os.chown(cache, FOREIGN_UID, FOREIGN_UID)
        r = cli("--config", factory(str(cache), server), "gpus", "sim1", "-o", "json", "--timeout", "60")
        assert r.exit_code == ExitCode.FAILURE, r.stderr
        assert "does not belong to the login user" in r.json()["errors"][0]["message"]

    def test_a_writable_cached_agent_is_uploaded_again(self, cli, factory, tmp_path, zipapp, server):
        cache = shared_dir(tmp_path / "mine", 0o700)
        marker = tmp_path / "marker"
        planted = plant(cache, zipapp, marker)
        planted.chmod(0o666)
        r = cli("--config", factory(str(cache), server), "gpus", "sim1", "--timeout", "60")
        assert r.exit_code == 0, r.stderr
        assert not marker.exists()
        assert planted.read_bytes() == zipapp.read_bytes()

    def test_a_missing_cache_is_created_private_and_reused(self, cli, factory, tmp_path, zipapp, server):
        cache = tmp_path / "new" / "agents"
        config = factory(str(cache), server)
        assert cli("--config", config, "gpus", "sim1", "--timeout", "60").exit_code == 0
        assert stat.S_IMODE(cache.stat().st_mode) == 0o700
        agent = cache / remote_name(zipapp)
        first = agent.stat().st_mtime_ns
        assert cli("--config", config, "gpus", "sim1", "--timeout", "60").exit_code == 0
        assert agent.stat().st_mtime_ns == first


# ---------------------------------------------------------------- symbolic links, parents, the start


def gpus(cli, config: str):
    return cli("--config", config, "gpus", "sim1", "-o", "json", "--timeout", "60")


@pytest.fixture(params=["sftp", "no-sftp"])
def server(request, sshd, sshd_factory):
    """Both ways of shipping the agent check the same things with the same messages."""
    return sshd if request.param == "sftp" else sshd_factory(sftp=False)


def test_a_symlinked_cache_directory_is_refused(cli, factory, tmp_path, zipapp, server):
    real = shared_dir(tmp_path / "real", 0o700)  # private, but the link can be swapped (review3)
    marker = tmp_path / "marker"
    plant(real, zipapp, marker)
    link = tmp_path / "link"
    link.symlink_to(real)
    r = gpus(cli, factory(str(link), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (error,) = r.json()["errors"]
    assert error["error"] == "agent"
    assert error["message"] == (
        f"the agent cache directory {link} on the node is a symbolic link, so another user could replace the agent."
    )
    r = cli("--config", factory(str(link), server), "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    (agent,) = [s for s in r.json()["items"][0]["steps"] if s["step"] == "agent"]
    assert f"`rm {link} && mkdir -m 700 {link}`" in agent["fix"]
    assert not marker.exists()
    assert link.is_symlink()


def test_a_dangling_symlink_is_refused_not_followed(cli, factory, tmp_path, server):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    r = gpus(cli, factory(str(link), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert "is a symbolic link" in r.json()["errors"][0]["message"]
    assert not (tmp_path / "nowhere").exists()


def test_a_world_writable_parent_without_the_sticky_bit_is_refused(cli, factory, tmp_path, zipapp, server):
    parent = shared_dir(tmp_path / "ww", 0o777)  # anyone can rename the private cache away and put theirs there
    cache = shared_dir(parent / "mine", 0o700)
    marker = tmp_path / "marker"
    plant(cache, zipapp, marker)
    r = gpus(cli, factory(str(cache), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (error,) = r.json()["errors"]
    assert error["message"] == (
        f"the agent cache directory {cache} on the node is inside {parent}, which is writable by group or others "
        "without the sticky bit (mode 0777), so another user could replace the agent."
    )
    r = cli("--config", factory(str(cache), server), "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    (agent,) = [s for s in r.json()["items"][0]["steps"] if s["step"] == "agent"]
    assert f"`chmod go-w {parent}` (or `chmod +t {parent}` if it is shared like /tmp)" in agent["fix"]
    assert not marker.exists()


def test_a_group_writable_grandparent_is_refused_too(cli, factory, tmp_path, server):
    top = shared_dir(tmp_path / "team", 0o775)
    cache = top / "a" / "b"
    r = gpus(cli, factory(str(cache), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert (
        f"is inside {top}, which is writable by group or others without the sticky bit (mode 0775)"
        in (r.json()["errors"][0]["message"])
    )


def test_a_private_cache_below_a_sticky_world_writable_directory_is_accepted(cli, factory, tmp_path, server):
    sticky = shared_dir(tmp_path / "tmp", 0o1777)  # like /tmp
    cache = sticky / "factoryctl"
    r = gpus(cli, factory(str(cache), server))
    assert r.exit_code == 0, r.stderr
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert len(list(cache.glob("factoryctl-agent-*.pyz"))) == 1


def test_a_symlinked_parent_of_the_login_user_is_followed_and_its_target_checked(cli, factory, tmp_path, server):
    target = shared_dir(tmp_path / "store", 0o755)
    alias = tmp_path / "alias"
    alias.symlink_to(target)
    r = gpus(cli, factory(str(alias / "cache"), server))
    assert r.exit_code == 0, r.stderr
    assert (target / "cache").is_dir()
    target.chmod(0o777)  # the directory the link points to is checked as well
    r = gpus(cli, factory(str(alias / "cache"), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert f"is inside {target}, which is writable by group or others" in r.json()["errors"][0]["message"]


@as_root
def test_a_symlinked_parent_of_another_user_is_refused(cli, factory, tmp_path, server):
    target = shared_dir(tmp_path / "store", 0o755)
    alias = tmp_path / "alias"
    alias.symlink_to(target)
    os.lchown(alias, FOREIGN_UID, FOREIGN_UID)
    r = gpus(cli, factory(str(alias / "cache"), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert (
        f"is inside {alias}, a symbolic link that belongs to uid {FOREIGN_UID} (neither root nor the login user)"
        in r.json()["errors"][0]["message"]
    )


@as_root
def test_a_parent_of_another_user_is_refused(cli, factory, tmp_path, server):
    theirs = shared_dir(tmp_path / "theirs", 0o755)
    os.chown(theirs, FOREIGN_UID, FOREIGN_UID)
    r = gpus(cli, factory(str(theirs / "cache"), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    assert f"is inside {theirs}, a directory that belongs to uid {FOREIGN_UID}" in r.json()["errors"][0]["message"]


def test_a_cache_swapped_for_a_symlink_after_the_check_is_not_run(cli, factory, tmp_path, zipapp, monkeypatch, server):
    """The start re-checks the cache in the shell that runs the agent: the check/use race of review3 is closed."""
    cache = shared_dir(tmp_path / "sticky", 0o1777) / "factoryctl"
    evil = shared_dir(tmp_path / "evil", 0o700)
    marker = tmp_path / "marker"
    plant(evil, zipapp, marker)  # of the right name and size, and (running as the login user here) its owner's
    real_ship = ssh_node.ship_agent

    def ship_then_swap(*args, **kwargs):
        shipped = real_ship(*args, **kwargs)
        cache.rename(cache.with_name("moved"))
        cache.symlink_to(evil)
        return shipped

    monkeypatch.setattr(ssh_node, "ship_agent", ship_then_swap)
    r = gpus(cli, factory(str(cache), server))
    assert r.exit_code == ExitCode.FAILURE, r.stderr
    (error,) = r.json()["errors"]
    assert error["error"] == "agent"
    assert error["message"] == (
        f"the agent cache directory {cache} on the node changed after it was checked (a symbolic link or another "
        "user's file in its place), so the agent was not started."
    )
    assert not marker.exists()


def test_the_start_command_quotes_everything():
    command = ssh_node.agent_command(["python3", "./a.pyz", "--node", "n;$(x)"], "/c d/$(y)", "a.pyz")
    assert command.startswith("exec sh -c ")
    assert "'/c d/$(y)'" in command
    assert "'n;$(x)'" in command


# ---------------------------------------------------------------- values that would be options, and `~`


@pytest.mark.parametrize("value", ["'-cimport os;os.system(\"id\")#'", "-x", "'~root/cache'"])
def test_a_dash_or_other_users_tilde_value_is_a_config_error(value):
    with pytest.raises(ConfigError) as caught:
        parse_config(f"name: x\nssh:\n  remote_cache_dir: {value}\nnodes: {{a: }}\n", Path("f.yaml"))
    assert caught.value.message.startswith("f.yaml:3:21: `ssh.remote_cache_dir`: "), caught.value.message
    assert caught.value.exit_code == ExitCode.CONFIG


def test_the_cli_refuses_a_dash_value_with_exit_3(cli, factory, tmp_path):
    marker = tmp_path / "marker"
    r = cli("--config", factory(f"-cimport os;open({str(marker)!r},'w')#"), "gpus", "sim1", "--timeout", "60")
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    assert ":2:25: `ssh.remote_cache_dir`: the directory name must not start with '-'" in r.stderr
    assert not marker.exists()


def test_relative_paths_in_the_agent_command_line_can_never_be_options():
    node = NodeSpec(name="n", host="h", sim=None)
    assert agent_argv(node, "f", "python3", "-cimport os#/factoryctl-agent-1.pyz", None)[1].startswith("./-c")
    assert agent_argv(node, "f", "python3", "factoryctl-agent-1.pyz", None)[1] == "./factoryctl-agent-1.pyz"
    assert agent_argv(node, "f", "python3", "/abs/a.pyz", None)[1] == "/abs/a.pyz"


@pytest.mark.parametrize(
    ("value", "resolved"),
    [("~", "."), ("~/", "."), ("~/a/b", "a/b"), ("~//a", "a"), ("/var/tmp/f", "/var/tmp/f"), ("rel", "rel")],
)
def test_tilde_means_the_login_directory(value, resolved):
    assert remote_cache_dir(value) == resolved


def test_tilde_alone_is_the_login_directory_on_the_node(cli, factory, ssh_node, zipapp):
    pool = SshPool(SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30))
    try:
        login = Path(pool.connect(ssh_node()).run(["pwd"], timeout=60).stdout.decode().strip())
    finally:
        pool.close()
    info = login.stat()
    if info.st_uid != os.geteuid() or info.st_mode & 0o022:
        pytest.skip(f"the login directory {login} is not private, so it is rightly refused as a cache")
    agent, sim = login / remote_name(zipapp), login / "sim"
    existed = agent.exists(), sim.exists()
    try:
        r = cli("--config", factory("~"), "gpus", "sim1", "--timeout", "60")
        assert r.exit_code == 0, r.stderr
        assert agent.is_file()
        assert not (login / "~").exists()
    finally:
        if not existed[0]:
            agent.unlink(missing_ok=True)
        if not existed[1]:
            shutil.rmtree(sim, ignore_errors=True)


# ---------------------------------------------------------------- a bad $FACTORYCTL_REMOTE_CACHE


UNREACHABLE = "  sim[1-3]: {host: 127.0.0.1, port: 1, sim: h100-sxm, gpus: 1}\n"


@pytest.mark.parametrize("value", ["a\nb", "-cimport os#", "~root/x"])
@pytest.mark.parametrize(
    "command",
    [
        ["gpus", "all", "--timeout", "5"],
        ["nodes", "list", "--timeout", "5"],
        ["nodes", "check", "all", "--timeout", "5"],
        ["telemetry", "collect", "--once", "--timeout", "5"],
        ["power", "set", "all", "--watts", "300", "--clamp", "--timeout", "5"],
        ["power", "reset", "all", "--timeout", "5"],
        ["sim", "inject", "all", "--xid", "79", "--timeout", "5"],
        ["metrics", "serve", "--port", "0"],
        ["dash"],
    ],
    ids=lambda command: "-".join(command[:2]),
)
def test_a_bad_environment_value_is_one_config_error_before_any_node(cli, factory, monkeypatch, value, command):
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", value)
    r = cli("--config", factory(".cache/factoryctl", nodes=UNREACHABLE), *command)
    assert r.exit_code == ExitCode.CONFIG, r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("factoryctl: $FACTORYCTL_REMOTE_CACHE is not a usable agent cache directory: ")
    assert r.stderr.count("FACTORYCTL_REMOTE_CACHE is not") == 1
    assert lines[1].startswith("hint: unset it (it overrides ssh.remote_cache_dir)")
    assert "refused" not in r.stderr  # no node was contacted (their port is closed)


def test_exec_does_not_care_about_it(cli, factory, monkeypatch):
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", "a\nb")
    r = cli("--config", factory(".cache/factoryctl"), "exec", "sim1", "--", "echo", "hi")
    assert r.exit_code == 0, r.stderr
    assert "hi" in r.stdout
