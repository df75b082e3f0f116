"""The `ssh` NodeTransport: run commands and the node agent over one persistent connection.

The agent zipapp is shipped to a per-user cache on the node (`~/.cache/factoryctl/`, else factory.yaml's
`ssh.remote_cache_dir` or `$FACTORYCTL_REMOTE_CACHE`) only when its content hash, which is part of its file name, is not already there: over SFTP, or with `cat >` on an exec channel when the server
has no SFTP subsystem. It is started as DESIGN.md's argv (quoted with `shlex.join`) under `env -i` with just PATH
and HOME, so a node's login environment (PYTHONPATH, LD_PRELOAD ...) cannot break it, and its stdin/stdout become
an `AgentSession`. A node with no usable Python (the command exits 126/127, or the interpreter is older than 3.9)
falls back to nvidia-smi through `SmiBridge`, which speaks the same protocol.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import re
import secrets
import shlex
import threading
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

from factoryctl.errors import ConfigError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.base import CommandResult
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.session import AgentSession
from factoryctl.transport.ssh import SshConnection, SshOptions, SshPool

if TYPE_CHECKING:
    import paramiko

    from factoryctl.config import FactoryConfig

#: Overrides the agent cache directory on the nodes, factory.yaml's `ssh.remote_cache_dir` included (relative paths
#: start at the login directory).
REMOTE_CACHE_ENV = "FACTORYCTL_REMOTE_CACHE"
DEFAULT_REMOTE_CACHE = ".cache/factoryctl"
_ZIPAPP_NAME = re.compile(r"^factoryctl-agent-[0-9a-f]{6,64}\.pyz$")
#: Exit statuses of a shell that could not find or run the interpreter.
_NO_PYTHON = (126, 127)

#: Jump hosts are shared by every transport of this process: one handshake per jump host, not one per node.
_JUMPS = SshPool()


def remote_cache_dir(configured: str | None = None) -> str:
    """The agent cache on nodes: `$FACTORYCTL_REMOTE_CACHE`, else `configured`, else `.cache/factoryctl`.

    `configured` is factory.yaml's `ssh.remote_cache_dir`; relative paths (and `~/...`) are under the login directory.
    """
    from_env = os.environ.get(REMOTE_CACHE_ENV)
    if from_env and any(c in from_env for c in "\n\r\0"):
        raise ConfigError(
            f"${REMOTE_CACHE_ENV} contains a newline, which no agent cache directory may.",
            f"unset it, or set it to a plain directory such as {DEFAULT_REMOTE_CACHE}.",
        )
    chosen = from_env or configured or DEFAULT_REMOTE_CACHE
    return chosen[2:] if chosen.startswith("~/") else chosen


def remote_name(zipapp: Path) -> str:
    """The zipapp's name on the node; it carries the content hash, so a new build gets a new name."""
    if _ZIPAPP_NAME.match(zipapp.name):
        return zipapp.name
    digest = hashlib.sha256(zipapp.read_bytes()).hexdigest()[:16]
    return f"factoryctl-agent-{digest}.pyz"


def ship_agent(connection: SshConnection, zipapp: Path, cache: str, timeout: float) -> tuple[str, bool]:
    """Make sure the node has this zipapp; returns its remote path and whether it was uploaded now."""
    import paramiko

    remote = str(PurePosixPath(cache) / remote_name(zipapp))
    size = zipapp.stat().st_size
    try:
        sftp = connection.transport.open_sftp_client()
    except (paramiko.SSHException, EOFError):
        sftp = None
    if sftp is None:
        return remote, _ship_with_cat(connection, zipapp, remote, size, timeout)
    try:
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(timeout)
        with contextlib.suppress(OSError):
            if sftp.stat(remote).st_size == size:
                return remote, False
        _sftp_makedirs(sftp, str(PurePosixPath(remote).parent))
        partial = f"{remote}.{secrets.token_hex(4)}.part"
        sftp.put(str(zipapp), partial)
        try:
            sftp.posix_rename(partial, remote)
        except OSError:
            sftp.remove(partial)
            raise
        return remote, True
    except OSError as exc:
        raise NodeError(
            connection.node,
            "agent",
            f"cannot upload the agent to {remote}: {exc}",
            "check free space and permissions of the cache directory on the node.",
        ) from exc
    finally:
        sftp.close()


def _sftp_makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    parts = PurePosixPath(path).parts
    for i in range(1, len(parts) + 1):
        prefix = str(PurePosixPath(*parts[:i]))
        if prefix in ("/", "."):
            continue
        try:
            sftp.stat(prefix)
        except OSError:
            try:
                sftp.mkdir(prefix, mode=0o700)
            except OSError:
                sftp.stat(prefix)  # made meanwhile by a concurrent upload (nodes sharing a host): fine


def _ship_with_cat(connection: SshConnection, zipapp: Path, remote: str, size: int, timeout: float) -> bool:
    probe = connection.run(["sh", "-c", 'test -f "$1" && wc -c < "$1"', "sh", remote], timeout=timeout)
    if probe.exit_code == 0 and probe.stdout.strip() == str(size).encode():
        return False
    directory = str(PurePosixPath(remote).parent)
    partial = f"{remote}.{secrets.token_hex(4)}.part"
    script = 'umask 077 && mkdir -p "$1" && cat > "$2" && mv -f "$2" "$3"'
    done = connection.run(
        ["sh", "-c", script, "sh", directory, partial, remote], timeout=timeout, stdin=zipapp.read_bytes()
    )
    if done.exit_code != 0:
        raise NodeError(
            connection.node,
            "agent",
            f"cannot upload the agent to {remote}: {done.stderr.decode('utf-8', 'replace').strip()}",
            "check free space and permissions of the cache directory on the node.",
        )
    return True


def agent_command(argv: list[str]) -> str:
    """The remote command line: `exec env -i PATH="$PATH" HOME="$HOME" <argv quoted>`."""
    return 'exec env -i PATH="$PATH" HOME="$HOME" ' + shlex.join(argv)


class SshTransport:
    """The NodeTransport of an SSH node (see transport/base.py)."""

    def __init__(self, node: NodeSpec, factory: str, connection: SshConnection, options: SshOptions) -> None:
        self.node = node
        self.factory = factory
        self.connection = connection
        self.options = options
        self.cache = remote_cache_dir(options.remote_cache)
        #: Whether the last start_agent uploaded the zipapp (tests and `nodes check` look at it).
        self.uploaded = False
        self.backend: str | None = None

    @classmethod
    def open(cls, node: NodeSpec, factory: str, options: SshOptions) -> SshTransport:
        """Connect to the node (through its shared jump host, if any) and authenticate."""
        target = _JUMPS.target(node) if options.ssh_config is None else SshPool(options).target(node)
        via = None if target.jump is None else _JUMPS.jump(node.name, target.jump)
        return cls(node, factory, SshConnection.open(node.name, target, options, via), options)

    def run(self, argv: list[str], timeout: float, stdin: bytes | None = None) -> CommandResult:
        """Run argv on the node through the login shell, quoted with shlex.join; `stdin` is fed, then EOF."""
        return self.connection.run(argv, timeout=timeout, stdin=stdin)

    def start_agent(self, timeout: float, zipapp: Path | None = None) -> AgentSession:
        """Ship (if needed) and start the agent; wait for its hello. No Python on the node: nvidia-smi instead."""
        if zipapp is None:
            from factoryctl.transport.bundle import agent_zipapp

            zipapp = agent_zipapp()
        remote, self.uploaded = ship_agent(self.connection, zipapp, self.cache, timeout)
        sim_dir = str(PurePosixPath(self.cache) / "sim")
        argv = agent_argv(self.node, self.factory, self.node.python, remote, sim_dir)
        chan = self.connection.channel()
        chan.exec_command(agent_command(argv))
        chan.settimeout(None)  # the session waits with its own timeouts; keepalive notices dead peers
        tail = _ChannelStderr(chan)
        session = AgentSession(
            self.node.name,
            cast("IO[bytes]", chan.makefile_stdin("wb")),
            cast("IO[bytes]", chan.makefile("rb")),
            on_close=chan.close,
            stderr_tail=tail.text,
        )
        try:
            hello = session.wait_hello(timeout)
        except NodeError:
            status = _exit_status(chan, 2.0)
            chan.close()
            if status in _NO_PYTHON or (status is not None and not self._python_usable(timeout)):
                return self._smi_session(timeout, tail.text())
            if not self.connection.transport.is_active():
                raise NodeError(
                    self.node.name, "refused", "connection lost while starting the agent", "is the node up?"
                ) from None
            raise
        self.backend = str(hello.get("backend"))
        self.connection.watch()
        return session

    def _python_usable(self, timeout: float) -> bool:
        """After the agent failed to start: is the node's interpreter there and >= 3.9 (else fall back to smi)?"""
        probe = [self.node.python, "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 9) else 3)"]
        try:
            return self.connection.run(probe, timeout=timeout).exit_code == 0
        except NodeError:
            return True  # the connection is the problem, not Python: report the agent's failure

    def _smi_session(self, timeout: float, why: str) -> AgentSession:
        from factoryctl.transport.smi import SmiBridge

        bridge = SmiBridge(self.node.name, self.connection, timeout, reason=why.strip())
        session: AgentSession = bridge.session()
        try:
            session.wait_hello(timeout)
        except NodeError as exc:
            raise NodeError(
                self.node.name,
                "driver",
                f"no usable {self.node.python} for the agent ({why.strip() or 'not found'}), and "
                f"{bridge.error or 'nvidia-smi did not answer'}",
                "install python3 (>= 3.9) on the node, or set its `python:` in factory.yaml; check the NVIDIA driver.",
            ) from exc
        self.backend = "smi"
        self.connection.watch()
        return session

    def close(self) -> None:
        """Close the connection (jump hosts stay shared)."""
        self.connection.close()


def _exit_status(chan: paramiko.Channel, timeout: float) -> int | None:
    if chan.status_event.wait(timeout):
        return chan.recv_exit_status()
    return None


class _ChannelStderr:
    """Drains the agent channel's stderr on a thread (so its window never fills) and keeps the last lines."""

    def __init__(self, chan: paramiko.Channel) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=5)
        self._chan = chan
        self._file = chan.makefile_stderr("rb")
        self._thread = threading.Thread(target=self._drain, daemon=True, name="agent-stderr")
        self._thread.start()

    def _drain(self) -> None:
        with contextlib.suppress(Exception):
            for raw in self._file:
                self._lines.append(raw.decode("utf-8", "replace"))

    def text(self) -> str:
        """The last lines; once the agent's output ended, its final words are waited for (briefly)."""
        if self._chan.eof_received or self._chan.closed:
            self._thread.join(1.0)
        return "".join(self._lines)


def open_ssh_transport(node: NodeSpec, config: FactoryConfig, timeout: float) -> SshTransport:
    """Connect to an SSH node with timeouts taken from factory.yaml's `ssh:` (bounded by `timeout`)."""
    step = min(float(config.settings.ssh.connect_timeout_s), timeout)
    options = SshOptions(
        connect_timeout_s=step,
        banner_timeout_s=step,
        auth_timeout_s=step,
        channel_timeout_s=max(step, timeout),
        remote_cache=config.settings.ssh.remote_cache_dir,
    )
    return SshTransport.open(node, config.name, options)
