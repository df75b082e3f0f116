"""Where and as whom to connect: a NodeSpec merged with the operator's ~/.ssh/config.

factory.yaml wins where it says something; ~/.ssh/config fills in HostName, User, Port, IdentityFile and ProxyJump,
so an inventory that works with `ssh gpu01` works with factoryctl too. Only the keys named here are tried (the
configured identity, else IdentityFile, else OpenSSH's default identities) plus ssh-agent: never every key in
~/.ssh, which trips sshd's MaxAuthTries ("too many authentication failures").
"""

from __future__ import annotations

import contextlib
import functools
import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factoryctl.errors import ConfigError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.known_hosts import DEFAULT_KNOWN_HOSTS

if TYPE_CHECKING:
    import paramiko

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
    def address(self) -> str:
        """`host:port` for messages (`[::1]:22` for an IPv6 address, as ssh and URLs write it)."""
        return host_port(self.host, self.port)

    @property
    def label(self) -> str:
        """`user@host:port` for messages."""
        return f"{self.user}@{self.address}"


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 address in brackets (`[::1]:9`): bare, its colons would run into the port's."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _config_path(config_path: Path | None) -> Path:
    return config_path or Path(os.path.expanduser("~/.ssh/config"))


def _ssh_config_lookup(alias: str, config_path: Path | None) -> dict[str, Any]:
    path = _config_path(config_path)
    if not path.is_file():
        return {}
    try:
        return dict(_parsed(path.read_text(errors="replace")).lookup(alias))
    except Exception as exc:  # paramiko raises several types for bad files
        raise ConfigError(f"{path}: cannot read SSH config: {exc}", "fix the file or move it aside.") from exc


@functools.lru_cache(maxsize=4)
def _parsed(text: str) -> paramiko.SSHConfig:
    """The file's text parsed once, not once per node of a 2,000-node fleet (reading it again is cheap)."""
    import paramiko

    return paramiko.SSHConfig.from_text(text)


def _bad_setting(
    config_path: Path | None, alias: str, keyword: str, value: str, problem: str, hint: str
) -> ConfigError:
    """A ConfigError naming the file and line (when it can be found) of a bad `keyword value` for host `alias`."""
    path = _config_path(config_path)
    where = str(path)
    with contextlib.suppress(OSError):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            word, _, rest = line.strip().replace("=", " ", 1).partition(" ")
            if word.lower() == keyword.lower() and value in rest:
                where = f"{path}, line {number}"
                break
    return ConfigError(f"{where}: {keyword} {value!r} for host {alias} {problem}.", hint)


def _port(text: str) -> int | None:
    """A TCP port (1-65535) written in decimal, else None."""
    return int(text) if text.isascii() and text.isdigit() and 0 < int(text) < 65536 else None


def _identities(explicit: str | None, configured: list[str] | None) -> tuple[str, ...]:
    if explicit:
        return (os.path.expanduser(explicit),)
    candidates = configured or list(DEFAULT_IDENTITIES)
    found = [os.path.expanduser(p) for p in candidates]
    return tuple(p for p in found if os.path.isfile(p))


_JUMP_HINT = "write each hop as [user@]host[:port] with a port from 1 to 65535 (e.g. jumper:2222), separated by commas."


def _parse_jump(hop: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` (also `ssh://user@host:port`); ValueError with the problem when it is not that."""
    hop = hop.removeprefix("ssh://")
    user, _, hostport = hop.rpartition("@")
    host, port_text = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else None
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
    if not host:
        raise ValueError(f"has no host in {hop!r}")
    port = None if port_text is None else _port(port_text)
    if port_text is not None and port is None:
        raise ValueError(f"has a port that is not a number from 1 to 65535: {port_text!r}")
    return (user or None), host, port


def resolve(
    spec: NodeSpec, config_path: Path | None = None, _depth: int = 0, _jump_override: str | None = None
) -> SshTarget:
    """Resolve a node to the endpoint (and jump chain) to connect to."""
    if _depth > MAX_JUMPS:
        raise ConfigError(
            f"the ProxyJump chain of {spec.name} in {_config_path(config_path)} is longer than {MAX_JUMPS} hops.",
            "look for a loop: a jump host whose own ProxyJump leads back to it.",
        )
    found = _ssh_config_lookup(spec.host, config_path)
    host = str(found.get("hostname") or spec.host)
    port = spec.port
    if port == 22 and found.get("port"):
        port = _port(str(found["port"])) or 0
        if not port:
            problem, hint = "is not a number from 1 to 65535", "write the port as a number such as 22."
            raise _bad_setting(config_path, spec.host, "Port", str(found["port"]), problem, hint)
    user = spec.user or found.get("user") or getpass.getuser()
    identities = _identities(spec.identity_file, found.get("identityfile"))
    known_hosts = spec.known_hosts or DEFAULT_KNOWN_HOSTS
    jump_text = _jump_override if _jump_override is not None else str(found.get("proxyjump") or "")
    jump = None
    if jump_text and jump_text.lower() != "none":
        hops = [hop.strip() for hop in jump_text.split(",")]
        try:
            if "" in hops:
                raise ValueError("has an empty hop")
            hop_user, hop_host, hop_port = [_parse_jump(hop) for hop in hops][-1]
        except ValueError as exc:
            raise _bad_setting(config_path, spec.host, "ProxyJump", jump_text, str(exc), _JUMP_HINT) from None
        earlier = hops[:-1]
        hop_spec = NodeSpec(
            name=f"{spec.name} (jump {hop_host})",
            host=hop_host,
            port=hop_port or 22,
            user=hop_user,
            known_hosts=spec.known_hosts,
        )
        jump = resolve(hop_spec, config_path, _depth + 1, ",".join(earlier) if earlier else None)
    return SshTarget(host, port, str(user), identities, known_hosts, jump)
