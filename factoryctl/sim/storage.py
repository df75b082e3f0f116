"""Where simulated node state lives on disk, and how it is read and replaced safely by several processes.

One JSON file per node, `<state_dir>/<factory>/<node>.json`. Readers never lock: writers replace the whole file
atomically (temporary file + `os.replace`), so a reader sees the old or the new state, never half of one. Writers
serialise on an `fcntl` lock beside the file, which the kernel releases if the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

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


def _make_dirs(directory: Path) -> None:
    """Create `directory` and missing parents readable by this user only (the state dir may be the controller's)."""
    for missing in reversed([d for d in (directory, *directory.parents) if not os.path.lexists(d)]):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(missing, 0o700)


class FileLock:
    """An exclusive `fcntl` lock on a file beside the state (released by the kernel if the holder dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1

    def __enter__(self) -> FileLock:
        _make_dirs(self.path.parent)
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


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
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = {}
    return (data if isinstance(data, dict) and data.get("version") == version else {}), identity


def write_json(path: Path, data: Dict[str, Any]) -> Optional[Identity]:
    """Replace `path` with `data` atomically; returns the new identity."""
    _make_dirs(path.parent)
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
