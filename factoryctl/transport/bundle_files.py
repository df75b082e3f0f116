"""The agent zipapp's file operations: whose file it is, reading it without following a link, replacing it whole.

Split from bundle.py (house rule: files under ~500 lines); they hold no state of the cache, which stays there.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def os_reason(exc: OSError) -> str:
    """An OSError's words without its errno and file names: `Read-only file system`."""
    return exc.strerror or str(exc) or type(exc).__name__


def own_file(path: Path) -> tuple[int, ...] | None:
    """The identity of `path` if it is a regular file (not a link) of this user that nobody else can write."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        return None
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def read_no_follow(path: Path) -> bytes:
    """The bytes of `path`, refused (OSError) if it is a symbolic link."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as raw:
        return raw.read()


def write_replacing(target: Path, data: bytes) -> None:
    """`data` written to a temporary file beside `target`, then renamed over it (replacing whatever was there)."""
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            raw.write(data)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
