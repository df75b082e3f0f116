"""`factoryctl init`'s factory.yaml leaves the login user and key to ~/.ssh/config, as `ssh HOST` does.

The template set `ssh.user: root` and `ssh.identity_file: ~/.ssh/id_ed25519`, and factory.yaml wins over
~/.ssh/config: a newcomer whose ~/.ssh/config names `User ops` and `IdentityFile ~/.ssh/mykey` for their nodes (and
who has no id_ed25519) was refused ("no identity file .../.ssh/id_ed25519") until they deleted those lines, and the
hint told them to set ssh.identity_file, the very line at fault. Now the template has them commented out, and the
hint for a missing key file names factory.yaml's identity_file as well as ~/.ssh/config's IdentityFile.
"""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path
from typing import Any

import yaml
from sshd_fixture import SshdServer
from user_ssh_config import write_user_ssh_config

from factoryctl.config import parse_config
from factoryctl.transport.ssh_config import resolve


def _template_with_node(cli: Any, node: str, ssh: dict[str, str] | None = None) -> str:
    """`factoryctl init -`'s file with `node: {}` added under nodes (and `ssh` keys set), as a newcomer edits it."""
    written = cli("init", "-")
    assert written.exit_code == 0, written.stderr
    data = yaml.safe_load(written.stdout)
    data["nodes"][node] = {}
    data["ssh"].update(ssh or {})
    return yaml.safe_dump(data)


def _my_key(home: Path, sshd: SshdServer) -> Path:
    """The sshd's user key, as ~/.ssh/mykey: a key file ssh's defaults (id_ed25519, ...) do not find."""
    key = home / ".ssh" / "mykey"
    key.parent.mkdir(exist_ok=True)
    shutil.copy(sshd.user_key, key)
    key.chmod(0o600)
    return key


def test_the_template_takes_user_and_key_from_the_ssh_config(cli: Any, isolated_home: Path) -> None:
    write_user_ssh_config(isolated_home, "Host gpu1\n  User ops\n  IdentityFile ~/.ssh/mykey\n  Port 2222\n")
    config = parse_config(_template_with_node(cli, "gpu1"), Path("factory.yaml"))
    target = resolve(config.nodes["gpu1"])
    assert (target.user, target.identity_files, target.port) == ("ops", (str(isolated_home / ".ssh/mykey"),), 2222)


def test_without_an_ssh_config_the_template_uses_the_local_user_and_the_default_keys(
    cli: Any, isolated_home: Path
) -> None:
    config = parse_config(_template_with_node(cli, "gpu1"), Path("factory.yaml"))
    assert resolve(config.nodes["gpu1"]).identity_files == ()  # no default key exists: only ssh-agent's keys
    (isolated_home / ".ssh").mkdir()
    (isolated_home / ".ssh" / "id_rsa").write_text("")
    target = resolve(config.nodes["gpu1"])
    assert (target.user, target.identity_files, target.port) == (
        getpass.getuser(),
        (str(isolated_home / ".ssh/id_rsa"),),
        22,
    )


def test_a_node_added_to_the_template_is_reached_with_the_ssh_config_s_key(
    cli: Any, isolated_home: Path, sshd: SshdServer, tmp_path: Path
) -> None:
    key = _my_key(isolated_home, sshd)
    sshd.write_known_hosts(isolated_home / ".ssh" / "known_hosts")  # the template's known_hosts
    write_user_ssh_config(
        isolated_home,
        f"Host gpu1\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {key}\n",
    )
    factory = tmp_path / "factory.yaml"
    factory.write_text(_template_with_node(cli, "gpu1"))
    reached = cli("--config", str(factory), "exec", "gpu1", "--", "echo", "in")
    assert reached.exit_code == 0, reached.stderr
    assert reached.stdout.endswith("in\n")


def test_a_missing_key_file_of_factory_yaml_gets_a_hint_naming_that_line(
    cli: Any, isolated_home: Path, sshd: SshdServer, tmp_path: Path
) -> None:
    key = _my_key(isolated_home, sshd)
    sshd.write_known_hosts(isolated_home / ".ssh" / "known_hosts")
    write_user_ssh_config(
        isolated_home,
        f"Host gpu1\n  HostName 127.0.0.1\n  Port {sshd.port}\n  User {sshd.user}\n  IdentityFile {key}\n",
    )
    factory = tmp_path / "factory.yaml"
    factory.write_text(_template_with_node(cli, "gpu1", {"identity_file": "~/.ssh/id_ed25519"}))
    refused = cli("--config", str(factory), "exec", "gpu1", "--", "true")
    assert refused.exit_code == 4
    missing = isolated_home / ".ssh" / "id_ed25519"
    assert f"(no identity file {missing})" in refused.stderr, refused.stderr
    hint = " ".join(refused.stderr.split("hint: ", 1)[1].split())
    assert f"correct or remove the identity_file that names {missing} in factory.yaml" in hint, hint
    assert "wins over ~/.ssh/config's IdentityFile" in hint
