"""The `ssh` NodeTransport: run commands and the node agent over one persistent connection.

The agent zipapp is shipped to a per-user cache on the node (`~/.cache/factoryctl/`, else factory.yaml's
`ssh.remote_cache_dir` or `$FACTORYCTL_REMOTE_CACHE`) only when its content hash, which is part of its file name, is
not already there: over SFTP, or with `cat >` on an exec channel when the server has no SFTP subsystem. The cache
must be private to the login user (its owner, not group/other-writable) before anything in it is reused or written
(see `ship_agent`). It is started as DESIGN.md's argv (quoted with `shlex.join`) under `env -i` with just PATH
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
import stat
import threading
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, cast

from factoryctl.config_schema import remote_cache_dir_problem
from factoryctl.errors import ConfigError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.base import CommandResult
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.session import AgentSession
from factoryctl.transport.ssh import SshConnection, SshOptions, SshPool
from factoryctl.transport.stdin_stream import Stdin

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

    `configured` is factory.yaml's `ssh.remote_cache_dir` (already checked when the file was loaded); relative paths,
    `~` and `~/...` are under the login directory (`~` alone is the login directory itself, returned as `.`). A bad
    `$FACTORYCTL_REMOTE_CACHE` is a ConfigError (exit 3): commands that start agents call `check_remote_cache_env`
    once before contacting any node, so it is reported once, not per node.
    """
    from_env = os.environ.get(REMOTE_CACHE_ENV)
    if from_env:
        problem = remote_cache_dir_problem(from_env)
        if problem:
            raise ConfigError(
                f"${REMOTE_CACHE_ENV} is not a usable agent cache directory: {problem}.",
                f"unset it (it overrides ssh.remote_cache_dir), or set it to a private directory on the nodes such "
                f"as {DEFAULT_REMOTE_CACHE}.",
            )
    chosen = from_env or configured or DEFAULT_REMOTE_CACHE
    if chosen == "~" or chosen.startswith("~/"):
        chosen = chosen[1:].lstrip("/") or "."
    return chosen


def check_remote_cache_env(nodes: Iterable[NodeSpec]) -> None:
    """Raise the ConfigError of a bad `$FACTORYCTL_REMOTE_CACHE` if any of `nodes` is reached over SSH.

    Called once by the commands that start agents, before any node is contacted; `exec` never uses the cache.
    """
    if any(node.transport == "ssh" for node in nodes):
        remote_cache_dir()


def remote_name(zipapp: Path) -> str:
    """The zipapp's name on the node; it carries the content hash, so a new build gets a new name."""
    if _ZIPAPP_NAME.match(zipapp.name):
        return zipapp.name
    digest = hashlib.sha256(zipapp.read_bytes()).hexdigest()[:16]
    return f"factoryctl-agent-{digest}.pyz"


def ship_agent(connection: SshConnection, zipapp: Path, cache: str, timeout: float) -> tuple[str, bool]:
    """Make sure the node has this zipapp; returns its remote path and whether it was uploaded now.

    The cache directory must be private to the login user before anything in it is reused or written: owned by
    that user and writable by nobody else (created 0700 when missing). Otherwise another local user of the node
    could plant a zipapp of the right name and size, or swap ours, and have it run as the SSH user; such a directory
    is refused (NodeError `agent`). A cached zipapp is reused only if it is a regular file of the right size owned
    by the login user and not group/other-writable (with the directory private, only that user or root can have
    written it, so its content is not read back); otherwise it is uploaded again to a temporary name and renamed
    over it. The login user's uid comes from `id -u` (one exec round trip): the owner of the login directory is not
    necessarily the login user (root-owned or automounted homes), and probing by creating a file would write into a
    directory not yet trusted.
    """
    import paramiko

    remote = str(PurePosixPath(cache) / remote_name(zipapp))
    directory = str(PurePosixPath(remote).parent)
    size = zipapp.stat().st_size
    try:
        sftp = connection.transport.open_sftp_client()
    except (paramiko.SSHException, EOFError):
        sftp = None
    if sftp is None:
        return remote, _ship_with_cat(connection, zipapp, directory, remote, size, timeout)
    try:
        channel = sftp.get_channel()
        if channel is not None:
            channel.settimeout(timeout)
        uid = _login_uid(connection, timeout)
        if _sftp_makedirs(sftp, directory):
            sftp.chmod(directory, 0o700)  # mkdir's mode is filtered by the server's umask
        _check_private_dir(connection.node, directory, sftp.stat(directory), uid)
        with contextlib.suppress(OSError):
            if _reusable(sftp.stat(remote), size, uid):
                return remote, False
        partial = f"{remote}.{secrets.token_hex(4)}.part"
        sftp.put(str(zipapp), partial)
        try:
            sftp.chmod(partial, 0o600)
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


def _login_uid(connection: SshConnection, timeout: float) -> int:
    probe = connection.run(["id", "-u"], timeout=timeout)
    text = probe.stdout.decode("utf-8", "replace").strip()
    if probe.exit_code != 0 or not text.isdigit():
        why = probe.stderr.decode("utf-8", "replace").strip() or text or f"exit code {probe.exit_code}"
        raise NodeError(
            connection.node,
            "agent",
            f"cannot tell the login user's uid on the node (`id -u`: {why}).",
            "the agent cache is checked against it; make sure `id` works in the login shell.",
        )
    return int(text)


def _shown(directory: str) -> str:
    """A cache path as the operator wrote it: relative paths start at the login directory."""
    if directory.startswith("/"):
        return directory
    return "~" if directory == "." else f"~/{directory}"


def _refuse_dir(node: str, directory: str, problem: str, fix: str) -> NodeError:
    shown = _shown(directory)
    return NodeError(
        node,
        "agent",
        f"the agent cache directory {shown} on the node {problem}, so another user could replace the agent.",
        f"{fix.format(dir=shlex.quote(shown))}, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a directory "
        "only the login user can write.",
    )


def _check_private_dir(node: str, directory: str, attrs: paramiko.SFTPAttributes, uid: int) -> None:
    """Refuse a cache directory that is not a directory, not the login user's, or writable by group or others."""
    mode = attrs.st_mode or 0
    if not stat.S_ISDIR(mode):
        raise NodeError(
            node,
            "agent",
            f"the agent cache {_shown(directory)} on the node is not a directory.",
            f"remove it on the node, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a private directory.",
        )
    if attrs.st_uid != uid:
        raise _refuse_dir(
            node, directory, f"belongs to uid {attrs.st_uid}, not to the login user (uid {uid})",
            "on the node, `chown` it to the login user (then `chmod 700 {dir}`)",
        )  # fmt: skip
    if mode & 0o022:
        raise _refuse_dir(
            node, directory, f"is writable by group or others (mode {stat.S_IMODE(mode):04o})",
            "make it private on the node with `chmod go-w {dir}`",
        )  # fmt: skip


def _reusable(attrs: paramiko.SFTPAttributes, size: int, uid: int) -> bool:
    """A cached zipapp is run only if it is a regular file of the right size, the login user's, and not g/o-writable."""
    mode = attrs.st_mode or 0
    return stat.S_ISREG(mode) and attrs.st_size == size and attrs.st_uid == uid and not mode & 0o022


def _sftp_makedirs(sftp: paramiko.SFTPClient, path: str) -> bool:
    """Create `path` and its missing parents (0700); whether `path` itself was created by this call."""
    parts = PurePosixPath(path).parts
    created = False
    for i in range(1, len(parts) + 1):
        prefix = str(PurePosixPath(*parts[:i]))
        created = False
        if prefix in ("/", "."):
            continue
        try:
            sftp.stat(prefix)
        except OSError:
            try:
                sftp.mkdir(prefix, mode=0o700)
                created = True
            except OSError:
                sftp.stat(prefix)  # made meanwhile by a concurrent upload (nodes sharing a host): checked as found
    return created


#: The cache check of `_ship_with_cat` (no SFTP): the same rules as over SFTP, in POSIX sh plus `test -O` (dash,
#: bash, busybox and ksh have it). Prints `reuse`, `upload`, or the problem: `notdir`, `owner`, `mode <ls mode>`.
_CAT_PROBE = r"""umask 077
if [ ! -e "$1" ] && [ ! -L "$1" ]; then
  mkdir -p -- "$(dirname -- "$1")" 2>/dev/null
  mkdir -- "$1" 2>/dev/null && chmod 700 -- "$1"
fi
[ -d "$1" ] || { echo notdir; exit 0; }
[ -O "$1" ] || { echo owner; exit 0; }
m=$(ls -ld -- "$1") && m=${m%% *}
case $m in ?????w*|????????w*) echo "mode $m"; exit 0;; esac
if [ -f "$2" ] && [ ! -L "$2" ] && [ -O "$2" ]; then
  m=$(ls -ld -- "$2") && m=${m%% *}
  case $m in ?????w*|????????w*) ;; *) s=$(wc -c < "$2") && [ $s -eq "$3" ] && { echo reuse; exit 0; };; esac
fi
echo upload"""


def _ls_mode(text: str) -> int:
    """The permission bits of an `ls -l` mode string (`drwxrwxrwt` -> 0o1777)."""
    bits = 0
    for i, char in enumerate(text[1:10].ljust(9, "-")):
        if char not in "-ST":
            bits |= 1 << (8 - i)
        if i in (2, 5, 8) and char in "sStT":
            bits |= {2: 0o4000, 5: 0o2000, 8: 0o1000}[i]
    return bits


def _ship_with_cat(
    connection: SshConnection, zipapp: Path, directory: str, remote: str, size: int, timeout: float
) -> bool:
    probe = connection.run(["sh", "-c", _CAT_PROBE, "sh", directory, remote, str(size)], timeout=timeout)
    verdict = probe.stdout.decode("utf-8", "replace").strip()
    if probe.exit_code != 0 or not verdict:
        raise NodeError(
            connection.node,
            "agent",
            f"cannot check the agent cache {_shown(directory)} on the node: "
            f"{probe.stderr.decode('utf-8', 'replace').strip() or f'exit code {probe.exit_code}'}",
            "check that the cache directory's parent exists and is writable by the login user.",
        )
    if verdict == "reuse":
        return False
    if verdict == "notdir":
        raise NodeError(
            connection.node,
            "agent",
            f"the agent cache {_shown(directory)} on the node is not a directory.",
            f"remove it on the node, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a private directory.",
        )
    if verdict == "owner":
        raise _refuse_dir(
            connection.node, directory, "does not belong to the login user",
            "on the node, `chown` it to the login user (then `chmod 700 {dir}`)",
        )  # fmt: skip
    if verdict.startswith("mode "):
        raise _refuse_dir(
            connection.node, directory, f"is writable by group or others (mode {_ls_mode(verdict[5:]):04o})",
            "make it private on the node with `chmod go-w {dir}`",
        )  # fmt: skip
    partial = f"{remote}.{secrets.token_hex(4)}.part"
    script = 'umask 077 && cat > "$1" && mv -f -- "$1" "$2"'
    done = connection.run(["sh", "-c", script, "sh", partial, remote], timeout=timeout, stdin=zipapp.read_bytes())
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
        #: Whether the last start_agent uploaded the zipapp (tests and `nodes check` look at it).
        self.uploaded = False
        self.backend: str | None = None

    @property
    def cache(self) -> str:
        """The agent cache directory on the node, resolved when an agent starts (`exec` never needs it)."""
        return remote_cache_dir(self.options.remote_cache)

    @classmethod
    def open(cls, node: NodeSpec, factory: str, options: SshOptions) -> SshTransport:
        """Connect to the node (through its shared jump host, if any) and authenticate."""
        target = _JUMPS.target(node) if options.ssh_config is None else SshPool(options).target(node)
        via = None if target.jump is None else _JUMPS.jump(node.name, target.jump)
        return cls(node, factory, SshConnection.open(node.name, target, options, via), options)

    def run(self, argv: list[str], timeout: float, stdin: Stdin = None) -> CommandResult:
        """Run argv on the node through the login shell, quoted with shlex.join; `stdin` is fed, then EOF."""
        return self.connection.run(argv, timeout=timeout, stdin=stdin)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT then SIGHUP to the running commands (see SshConnection.interrupt)."""
        self.connection.interrupt()

    def start_agent(self, timeout: float, zipapp: Path | None = None) -> AgentSession:
        """Ship (if needed) and start the agent; wait for its hello. No Python on the node: nvidia-smi instead."""
        if zipapp is None:
            from factoryctl.transport.bundle import agent_zipapp

            zipapp = agent_zipapp()
        cache = self.cache
        remote, self.uploaded = ship_agent(self.connection, zipapp, cache, timeout)
        sim_dir = str(PurePosixPath(cache) / "sim")
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
