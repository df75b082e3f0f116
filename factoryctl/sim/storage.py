"""Where simulated node state lives on disk, and how it is read and replaced safely by several processes.

One JSON file per node, `<state_dir>/<factory>/<node>.json`. Readers never wait for one another: writers replace the
whole file atomically (temporary file + `os.replace`), so a reader sees the old or the new state, never half of one.
Writers serialise on an `fcntl` lock beside the file, which the kernel releases if the holder dies; a reader only
checks, after computing a reading, that no writer holds it (`unchanged_since`).

The state dir may sit in a directory other users can write (a sticky, shared `state_dir`): one of them could put a
symbolic link where `<state_dir>` or `<factory>` goes, or make either theirs, and so have an agent run by root create
its files where they chose. So both must be real directories of this user or root that nobody else can write
(`factoryctl.agent.limits_lock.others_can_change`, the limits lock's own check), else every use of the node fails
with UnsafeStateDirectory naming the directory; and no state file is opened through a symbolic link.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

from factoryctl.agent.limits_lock import others_can_change

Identity = Tuple[int, int, int]  # (inode, mtime_ns, size): changes on every replace


def default_state_dir() -> Path:
    """`$XDG_STATE_HOME/factoryctl/sim` (or ~/.local/state/factoryctl/sim): simulated nodes' default home."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "factoryctl" / "sim"


def safe_name(name: str) -> str:
    """`name` as a file name: unchanged when already safe, else sanitised plus a short hash (stays unique)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"
    return clean if clean == name else f"{clean}-{uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:8]}"


def state_path(state_dir: "os.PathLike[str] | str", factory: str, node: str) -> Path:
    """The JSON file holding simulated node `node` of factory `factory`."""
    return Path(state_dir) / safe_name(factory) / f"{safe_name(node)}.json"


def limits_lock_path(state_dir: "os.PathLike[str] | str", factory: str, node: str) -> Path:
    """The lock every agent of simulated node `node` holds while it changes its power limits (factoryctl.agent).

    Beside the state file, so it is per simulated node and found by every agent of it; `.limits-lock` is no name
    the state, its own lock or its temporary files can take, whatever the node is called. Absolute (from the
    current directory), as an agent names it in its messages: an SSH node's agent runs in its cache directory, which
    a relative `--state-dir` is relative to.
    """
    return Path(os.path.abspath(state_path(state_dir, factory, node).with_suffix(".limits-lock")))


class UnsafeStateDirectory(OSError):
    """A node's directory, or the state dir above it, that another user could redirect or change (see above)."""


#: How every state file is opened: never through a symbolic link, never inherited by a child process, and never
#: waiting (a FIFO in a file's place is then refused as no regular file; a regular file ignores O_NONBLOCK).
_NO_LINKS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _node_directory(directory: Path) -> None:
    """Create a node's `directory` and missing parents readable by this user only; refuse one others can change.

    `directory` is `<state_dir>/<factory>`: it and the state dir must each be a real directory (looked at with
    `lstat`) of this user or root, not writable by others unless sticky (UnsafeStateDirectory otherwise).
    """
    state_dir = directory.parent
    for missing in reversed([d for d in state_dir.parents if not os.path.lexists(d)]):
        _make_dir(missing)
    for checked in (state_dir, directory):  # each checked before anything is made inside it
        if not os.path.lexists(checked):
            _make_dir(checked)
        try:
            is_link = stat.S_ISLNK(os.lstat(checked).st_mode)
        except OSError as exc:
            raise UnsafeStateDirectory(f"cannot examine {checked}: {exc.strerror}") from None
        problem = "is a symbolic link" if is_link else others_can_change(checked)
        if problem:
            raise UnsafeStateDirectory(
                f"{checked} {problem}: simulated GPU state is not kept there (remove it, or use another state_dir)"
            )


class FileLock:
    """An exclusive `fcntl` lock on a file beside the state (released by the kernel if the holder dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> FileLock:
        _node_directory(self.path.parent)
        fd = _open_regular(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


def _make_dir(directory: Path) -> None:
    """`mkdir` readable by this user only (the state dir may be the controller's); one made meanwhile is fine."""
    with contextlib.suppress(FileExistsError):  # made meanwhile by another process
        os.mkdir(directory, 0o700)


def _open_regular(path: Path, flags: int) -> int:
    """`os.open(path, flags)` of a regular file, never through a symbolic link (UnsafeStateDirectory for a link)."""
    try:
        fd = os.open(path, flags | _NO_LINKS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStateDirectory(f"{path} is a symbolic link: not followed (remove it)") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UnsafeStateDirectory(f"{path} is not a regular file (remove it)")
    return fd


def stat_identity(path: Path) -> Optional[Identity]:
    """What changes when the file is replaced; None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_json(path: Path, version: int) -> Tuple[Dict[str, Any], Optional[Identity]]:
    """The state and its identity; `{}` when missing, corrupt or of another version (it is then re-created)."""
    identity = stat_identity(path)
    if identity is None:
        return {}, None
    try:
        with os.fdopen(_open_regular(path, os.O_RDONLY), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    return (data if isinstance(data, dict) and data.get("version") == version else {}), identity


def unchanged_since(path: Path, lock_path: Path, identity: Optional[Identity]) -> bool:
    """Whether `path` is still `identity` and no writer holds its lock: a reading computed from it stands.

    A writer holds the lock from taking its checkpoint's time until its file replaces this one, so a file unchanged
    while nobody holds the lock has no change pending before the reading's time. A writer holding it is waited for
    (a shared lock: readers never wait for one another) and the answer is False: read the file again.
    """
    try:
        fd = _open_regular(lock_path, os.O_RDONLY)
    except FileNotFoundError:  # no lock, no writer
        return stat_identity(path) in (None, identity)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return False
        return stat_identity(path) in (None, identity)  # a file gone has nothing newer to read (as `_refresh`)
    finally:
        os.close(fd)  # and with it the lock


def write_json(path: Path, data: Dict[str, Any]) -> Optional[Identity]:
    """Replace `path` with `data` atomically; returns the new identity."""
    _node_directory(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return stat_identity(path)
