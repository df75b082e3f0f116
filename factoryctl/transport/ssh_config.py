"""Where and as whom to connect: a NodeSpec merged with the operator's ~/.ssh/config.

factory.yaml wins where it says something; ~/.ssh/config fills in HostName, User, Port, IdentityFile and ProxyJump,
so an inventory that works with `ssh gpu01` works with factoryctl too. Only the keys named here are tried (the
configured identity, else IdentityFile, else OpenSSH's default identities) plus ssh-agent: never every key in
~/.ssh, which trips sshd's MaxAuthTries ("too many authentication failures").
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factoryctl.errors import ConfigError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.known_hosts import DEFAULT_KNOWN_HOSTS

DEFAULT_IDENTITIES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
#: Jump chains longer than this are refused (a loop in ~/.ssh/config would recurse forever).
MAX_JUMPS = 8


@dataclass(frozen=True)
class SshTarget:
    """A fully resolved SSH endpoint; `jump` is the hop to tunnel through (ProxyJump), if any."""

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: str
    jump: SshTarget | None = None

    @property
    def key(self) -> tuple[str, int, str]:
        """Identity of a connection: endpoints with the same key can share one (jump hosts do)."""
        return (self.host, self.port, self.user)

    @property
    def label(self) -> str:
        """`user@host:port` for messages."""
        return f"{self.user}@{self.host}:{self.port}"


def _ssh_config_lookup(alias: str, config_path: Path | None) -> dict[str, Any]:
    import paramiko

    path = config_path or Path(os.path.expanduser("~/.ssh/config"))
    if not path.is_file():
        return {}
    try:
        config = paramiko.SSHConfig.from_path(str(path))
        return dict(config.lookup(alias))
    except Exception as exc:  # paramiko raises several types for bad files
        raise ConfigError(f"{path}: cannot read SSH config: {exc}", "fix the file or move it aside.") from exc


def _identities(explicit: str | None, configured: list[str] | None) -> tuple[str, ...]:
    if explicit:
        return (os.path.expanduser(explicit),)
    candidates = configured or list(DEFAULT_IDENTITIES)
    found = [os.path.expanduser(p) for p in candidates]
    return tuple(p for p in found if os.path.isfile(p))


def _parse_jump(hop: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (also `ssh://user@host:port`)."""
    hop = hop.removeprefix("ssh://")
    user, _, hostport = hop.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
        port = int(port_text)
    return (user or None), host, port


def resolve(
    spec: NodeSpec, config_path: Path | None = None, _depth: int = 0, _jump_override: str | None = None
) -> SshTarget:
    """Resolve a node to the endpoint (and jump chain) to connect to."""
    if _depth > MAX_JUMPS:
        raise ConfigError(f"ProxyJump chain for {spec.name} is longer than {MAX_JUMPS} hops.", "check ~/.ssh/config.")
    found = _ssh_config_lookup(spec.host, config_path)
    host = str(found.get("hostname") or spec.host)
    port = spec.port
    if port == 22 and found.get("port"):
        port = int(found["port"])
    user = spec.user or found.get("user") or getpass.getuser()
    identities = _identities(spec.identity_file, found.get("identityfile"))
    known_hosts = spec.known_hosts or DEFAULT_KNOWN_HOSTS
    jump_text = _jump_override if _jump_override is not None else str(found.get("proxyjump") or "")
    jump = None
    if jump_text and jump_text.lower() != "none":
        *earlier, last = [hop.strip() for hop in jump_text.split(",") if hop.strip()]
        hop_user, hop_host, hop_port = _parse_jump(last)
        hop_spec = NodeSpec(
            name=f"{spec.name} (jump {hop_host})",
            host=hop_host,
            port=hop_port or 22,
            user=hop_user,
            known_hosts=spec.known_hosts,
        )
        jump = resolve(hop_spec, config_path, _depth + 1, ",".join(earlier) if earlier else None)
    return SshTarget(host, port, str(user), identities, known_hosts, jump)
