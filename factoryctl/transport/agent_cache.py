"""The agent's cache on a node: where the zipapp goes, proof that nobody else can change it, and the start command.

The agent zipapp is shipped to a per-user cache on the node (`~/.cache/factoryctl/`, else factory.yaml's
`ssh.remote_cache_dir` or `$FACTORYCTL_REMOTE_CACHE`) only when its content hash, which is part of its file name, is
not already there with that content (sha256, where the node can hash): over SFTP, or with `cat >` on an exec channel when the server has no SFTP subsystem. The cache
must be private to the login user (not a symbolic link, its owner, not group/other-writable, and every directory
above it root's or the user's and not writable by others unless sticky) before anything in it is reused or written
(see `ship_agent`), and the same shell that starts the agent re-checks it (`agent_command`). It lives apart from
`ssh_node` because it is the security-sensitive part of starting an agent over SSH.
The sh these checks run on the node (the login probe, the no-SFTP cache check) is in `agent_cache_probes`, and the
rules a directory is judged by, with their refusals' words, in `agent_cache_rules`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from factoryctl.config_schema import remote_cache_dir_problem
from factoryctl.errors import ConfigError, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.agent_cache_probes import CAT_PROBE, LOGIN_PROBE
from factoryctl.transport.agent_cache_rules import (
    REMOTE_CACHE_ENV,
    ancestors,
    cat_refusal,
    check_private_dir,
    parent_problem,
    refuse_dir,
    reusable,
    shown_dir,
)
from factoryctl.transport.agent_upload import UploadDeadline, link_failure
from factoryctl.transport.quoting import shell_join
from factoryctl.transport.ssh import QUIET_LOGIN_HINT, SshConnection

if TYPE_CHECKING:
    import paramiko


DEFAULT_REMOTE_CACHE = ".cache/factoryctl"
_ZIPAPP_NAME = re.compile(r"^factoryctl-agent-[0-9a-f]{6,64}\.pyz$")


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


class ShippedAgent(NamedTuple):
    """The zipapp on the node: its resolved absolute path, whether it was uploaded now, and whether it is known whole.

    `whole`: uploaded now, or reused with the local zipapp's sha256; False when only its size could be compared.
    """

    path: str
    uploaded: bool
    whole: bool


def ship_agent(connection: SshConnection, zipapp: Path, cache: str, timeout: float) -> ShippedAgent:
    """Make sure the node has this zipapp (see `ShippedAgent`).

    The cache directory must be private to the login user before anything in it is reused or written: not a
    symbolic link (lstat), owned by that user and writable by nobody else (created 0700 when missing). Every
    directory above it, both as written and as resolved (relative paths start at the login directory), must belong
    to root or the login user and must not be writable by group or others unless sticky (like OpenSSH's
    secure_path); a symbolic link among them must belong to root or the login user. Otherwise another local user of
    the node could plant a zipapp of the right name and size, or swap ours or the directory, and have it run as the
    SSH user; such a cache is refused (NodeError `agent`). `agent_command` checks the resolved path again in the
    shell that starts the agent. A cached zipapp is reused only if it is a regular file of the right size owned
    by the login user and not group/other-writable, and its sha256 is the local zipapp's; otherwise it is uploaded
    again to a temporary name and renamed over it. The hash guards against damage (a disk or copy error that kept
    the size), not against other users: the private directory does that. A node with no sha256sum, shasum or
    openssl is judged on the size alone. The login user's uid comes from `id -u`, in the same exec that hashes the
    cached file (one round trip): the owner of the login directory is not necessarily the login user (root-owned or
    automounted homes), and probing by creating a file would write into a directory not yet trusted.
    """
    import paramiko

    try:
        local = _LocalZipapp.of(zipapp)  # read once: the bytes hashed are the bytes uploaded
    except OSError as exc:  # a temporary directory a cleaner of /tmp removed just now (transport/bundle.py)
        raise NodeError(
            connection.node,
            "agent",
            f"cannot read the agent zipapp {zipapp.name} built on this machine ({exc.strerror or exc}).",
            "try again: the next start builds it anew.",
        ) from exc
    remote = str(PurePosixPath(cache) / local.name)
    try:
        sftp = connection.transport.open_sftp_client()
    except (paramiko.SSHException, EOFError):
        sftp = None
    if sftp is None:
        return _ship_with_cat(connection, str(PurePosixPath(remote).parent), local, timeout)
    try:
        return _ship_with_sftp(connection, sftp, local, remote, timeout)
    finally:
        sftp.close()


def _ship_with_sftp(
    connection: SshConnection, sftp: paramiko.SFTPClient, local: _LocalZipapp, remote: str, timeout: float
) -> ShippedAgent:
    """`ship_agent` over SFTP, all of it within `timeout` (--timeout: agent_upload.py); the link's failure said so."""
    import paramiko

    with UploadDeadline(sftp, timeout) as deadline:
        try:
            return _sftp_steps(connection, sftp, local, remote, timeout)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            failure = link_failure(connection, exc, timeout, deadline.expired.is_set())
            raise failure or NodeError(
                connection.node,
                "agent",
                f"cannot upload the agent to {remote}: {exc}",
                "check free space and permissions of the cache directory on the node.",
            ) from exc


def _sftp_steps(
    connection: SshConnection, sftp: paramiko.SFTPClient, local: _LocalZipapp, remote: str, timeout: float
) -> ShippedAgent:
    """Check the cache (making it if missing), then reuse the zipapp `remote` or upload it."""
    directory = str(PurePosixPath(remote).parent)
    channel = sftp.get_channel()
    if channel is not None:
        channel.settimeout(timeout)
    uid, digest = _login_probe(connection, remote, local, timeout)
    if _sftp_makedirs(connection, sftp, directory, timeout):
        sftp.chmod(directory, 0o700)  # mkdir's mode is filtered by the server's umask
    check_private_dir(connection.node, directory, sftp.lstat(directory), uid)
    real = _sftp_check_parents(connection.node, sftp, directory, uid)
    remote = str(PurePosixPath(real) / local.name)
    with contextlib.suppress(OSError):
        if reusable(sftp.lstat(remote), local.size, uid) and digest in (None, local.sha256):
            return ShippedAgent(remote, False, digest == local.sha256)
    partial = f"{remote}.{secrets.token_hex(4)}.part"
    sftp.putfo(io.BytesIO(local.data), partial, len(local.data))
    try:
        sftp.chmod(partial, 0o600)
        sftp.posix_rename(partial, remote)
    except OSError:
        sftp.remove(partial)
        raise
    return ShippedAgent(remote, True, True)


@dataclass(frozen=True)
class _LocalZipapp:
    """The zipapp's bytes, read once, and what the node's copy is compared with: its name there, size and sha256 (hex).

    Whatever is uploaded is these bytes, not the file read again: a file swapped between the hash and the upload
    (a local cache reached by name) can never be what the node runs under the checked hash.
    """

    name: str
    size: int
    sha256: str
    data: bytes = field(repr=False)

    @classmethod
    def of(cls, zipapp: Path) -> _LocalZipapp:
        """The zipapp as read now: one read, and one copy of its bytes, shared while the file is the same one.

        A controller starts every node's link at once: a copy each held ~130 KB per SSH node through its login
        probe and upload (260 MB at 2,000 nodes). The file opened is the one compared (device, inode, size, mtime):
        a file replaced since is read anew.
        """
        fd = os.open(zipapp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as raw:
            info = os.fstat(raw.fileno())
            ident = (str(zipapp), info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
            with _READ_LOCK:
                known = _LAST_READ.get(ident)
            if known is not None:
                return known
            data = raw.read()
        digest = hashlib.sha256(data).hexdigest()
        name = zipapp.name if _ZIPAPP_NAME.match(zipapp.name) else f"factoryctl-agent-{digest[:16]}.pyz"
        read = cls(name, len(data), digest, data)
        with _READ_LOCK:
            _LAST_READ.clear()  # the newest zipapp only: an upgrade's build replaces the last
            _LAST_READ[ident] = read
        return read


#: The last zipapp read by `_LocalZipapp.of`, by its path and file identity; `_READ_LOCK` guards it (links' threads).
_LAST_READ: dict[tuple[str, int, int, int, int], _LocalZipapp] = {}
_READ_LOCK = threading.Lock()


def _login_probe(connection: SshConnection, remote: str, local: _LocalZipapp, timeout: float) -> tuple[int, str | None]:
    """The login user's uid and the sha256 of the cached zipapp `remote` (None: missing, or no tool to hash it).

    One exec round trip, as `id -u` alone took before the content was compared.
    """
    probe = connection.run(["sh", "-c", LOGIN_PROBE, "sh", remote, str(local.size)], timeout=timeout)
    uid, _, rest = probe.stdout.decode("utf-8", "replace").partition("\n")
    uid = uid.strip()
    if probe.exit_code == 0 and not uid.isdigit():  # output the markers of `SshConnection.run` did not catch
        raise NodeError(
            connection.node,
            "agent",
            f"cannot tell the login user's uid on the node: `id -u` printed {uid[:80]!r}, not a number.",
            f"the agent cache is checked against it; {QUIET_LOGIN_HINT}",
        )
    if probe.exit_code != 0:
        why = probe.stderr.decode("utf-8", "replace").strip() or uid or f"exit code {probe.exit_code}"
        raise NodeError(
            connection.node,
            "agent",
            f"cannot tell the login user's uid on the node (`id -u`: {why}).",
            "the agent cache is checked against it; make sure `id` works in the login shell.",
        )
    digest = rest.strip()
    return int(uid), digest if re.fullmatch(r"[0-9a-f]{64}", digest) else None


def _sftp_check_parents(node: str, sftp: paramiko.SFTPClient, directory: str, uid: int) -> str:
    """Check every directory above the cache, as written and resolved; returns the cache's resolved path."""
    login = sftp.normalize(".")
    absolute = str(PurePosixPath(login) / directory)  # an absolute `directory` replaces `login`
    real = sftp.normalize(absolute)  # no symbolic links left: its ancestors are the resolved chain
    check_private_dir(node, directory, sftp.lstat(real), uid)
    for path in dict.fromkeys([*ancestors(absolute), *ancestors(real)]):
        attrs = sftp.lstat(path)
        problem = parent_problem(path, attrs.st_mode or 0, attrs.st_uid, uid)
        if problem:
            raise refuse_dir(node, directory, *problem)
    return real


def _sftp_makedirs(connection: SshConnection, sftp: paramiko.SFTPClient, path: str, timeout: float) -> bool:
    """Create `path` and its missing parents (0700); whether `path` itself was created by this call.

    One that cannot be made (a read-only or foreign login directory) is a NodeError naming it and why.
    """
    parts = PurePosixPath(path).parts
    created = False
    for i in range(1, len(parts) + 1):
        prefix = str(PurePosixPath(*parts[:i]))
        created = False
        if prefix in ("/", "."):
            continue
        try:
            sftp.lstat(prefix)  # a symbolic link is never replaced; the checks refuse it or follow it
        except OSError:
            try:
                sftp.mkdir(prefix, mode=0o700)
                created = True
            except OSError as exc:
                channel = sftp.get_channel()
                if isinstance(exc, (TimeoutError, ConnectionError)) or channel is None or channel.closed:
                    raise  # the link's failure, not the directory's: agent_upload.link_failure says it
                try:
                    sftp.lstat(prefix)  # made meanwhile by a concurrent upload (nodes sharing a host): checked as found
                except OSError:
                    raise _cannot_create(connection, path, prefix, exc, timeout) from exc
    return created


def _cannot_create(connection: SshConnection, path: str, prefix: str, exc: OSError, timeout: float) -> NodeError:
    """The error of a cache directory `path` whose part `prefix` SFTP could not make (`exc`).

    SFTP names most causes `Failure` (a read-only file system among them), so `mkdir` on the node is asked why; with
    mode 700, as the cache's own directories are, should it succeed where SFTP failed (the next run then uses it).
    """
    why = exc.strerror or str(exc)
    with contextlib.suppress(NodeError):
        said = (
            connection.run(["mkdir", "-m", "700", "--", prefix], timeout=timeout)
            .stderr.decode("utf-8", "replace")
            .strip()
        )
        why = said.rpartition(": ")[2] or why  # `mkdir: cannot create directory '.cache': Read-only file system`
    where = "" if prefix == path else f" (mkdir {shown_dir(prefix)})"
    return NodeError(
        connection.node,
        "agent",
        f"cannot create the agent cache {shown_dir(path)} on the node{where}: {why}.",
        f"set ssh.remote_cache_dir in factory.yaml (or ${REMOTE_CACHE_ENV}) to a directory the login user can "
        "create on the node, such as /var/tmp/factoryctl.",
    )


def _ship_with_cat(connection: SshConnection, directory: str, local: _LocalZipapp, timeout: float) -> ShippedAgent:
    node = connection.node
    name = local.name
    argv = ["sh", "-c", CAT_PROBE, "sh", directory, name, str(local.size), local.sha256]
    end = time.monotonic() + timeout  # the probe and the upload together within --timeout, as over SFTP
    probe = connection.run(argv, timeout=timeout)
    verdict, _, about = probe.stdout.decode("utf-8", "replace").rstrip("\n").partition("\n")
    word, _, detail = verdict.partition(" ")
    if probe.exit_code != 0 or not about or word == "missing":
        why = probe.stderr.decode("utf-8", "replace").strip() or (
            f"{about} is missing" if word == "missing" else f"exit code {probe.exit_code}"
        )
        raise NodeError(
            node,
            "agent",
            f"cannot check the agent cache {shown_dir(directory)} on the node: {why}",
            "check that the cache directory's parent exists and is writable by the login user.",
        )
    if word == "reuse":
        return ShippedAgent(str(PurePosixPath(about) / name), False, detail == local.sha256)
    refusal = cat_refusal(node, directory, word, detail, about)
    if refusal is not None:
        raise refusal
    remote = str(PurePosixPath(about) / name)
    partial = f"{remote}.{secrets.token_hex(4)}.part"
    script = 'umask 077 && cat > "$1" && mv -f -- "$1" "$2"'
    left = max(end - time.monotonic(), 0.1)
    done = connection.run(["sh", "-c", script, "sh", partial, remote], timeout=left, stdin=local.data)
    if done.exit_code != 0:
        raise NodeError(
            connection.node,
            "agent",
            f"cannot upload the agent to {remote}: {done.stderr.decode('utf-8', 'replace').strip()}",
            "check free space and permissions of the cache directory on the node.",
        )
    return ShippedAgent(remote, True, True)


#: Exit status of `agent_command` when the cache changed between the check and the start (not 126/127: those mean
#: "no Python" and fall back to nvidia-smi).
CACHE_CHANGED = 86

#: Starts the agent only from the checked cache: `$1` its resolved path, `$2` the zipapp's name, then the argv. `cd -P`
#: then `pwd -P` proves no symbolic link was followed (the check and the start see the same directory, and from
#: then on `.` cannot be swapped), `-O` that it and the zipapp are still the login user's.
_LAUNCH = (
    'cd -P -- "$1" 2>/dev/null && [ "$(pwd -P)" = "$1" ] && [ -O . ] && [ -f "$2" ] && [ ! -h "$2" ] && [ -O "$2" ] '
    f'|| {{ echo "factoryctl: the agent cache $1 changed after it was checked; the agent was not started." >&2; '
    f"exit {CACHE_CHANGED}; }}\n"
    'shift 2\nexec env -i PATH="$PATH" HOME="$HOME" "$@"'
)


def agent_command(argv: list[str], cache: str | None = None, name: str | None = None) -> str:
    """The remote command line: `exec env -i PATH="$PATH" HOME="$HOME" <argv quoted>`.

    With `cache` (the resolved absolute cache directory) and `name` (the zipapp in it), the argv is run from inside
    the cache after re-checking it in the same shell (`_LAUNCH`), so relative paths in argv start at the cache.
    """
    if cache is None or name is None:
        return 'exec env -i PATH="$PATH" HOME="$HOME" ' + shell_join(argv)
    return "exec " + shell_join(["sh", "-c", _LAUNCH, "sh", cache, name, *argv])
