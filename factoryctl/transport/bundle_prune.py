"""Old agent zipapps removed from this user's cache when a new one is built there (`bundle.agent_zipapp`).

Every change of an agent or simulator source (an upgrade, a developer's edit) builds a new
`factoryctl-agent-<hash>.pyz` (about 130 KB) beside the old ones, and nothing removed them: a cache of a
developer's checkout grew by one file per edit, for good. So when this process builds one in its private cache, it
removes this user's other agent zipapps (and a crashed build's temporary files) last written more than
`PRUNE_AFTER_S` (7 days) ago.

Why that is safe: the directory is the one `bundle._cache_place` found private (this user's, writable by nobody
else, reached by no link another user planted), so nobody else can put or swap an entry in it; only regular files
(never links) of this user whose names are exactly those the bundle makes are removed, through the directory's
descriptor. A process of another version still running (a controller started weeks ago) rebuilds its own file from
the bytes it pinned the next time it starts an agent (`agent_zipapp` checks the file at every use), so removing it
costs that process a build (~20 ms), not a node. What is not removed: the zipapps uploaded to nodes' caches (see
docs/security.md), and anything in the temporary directory used instead of a cache (removed at exit).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from pathlib import Path

#: A zipapp of another build is removed once it was last written this long ago (and a new one is built).
PRUNE_AFTER_S = 7 * 86400
#: The names the bundle makes: the zipapp, and the temporary file it is written to before the rename.
_NAMES = re.compile(r"factoryctl-agent-[0-9a-f]{16}\.pyz(\.[A-Za-z0-9_]+\.tmp)?")


def prune_old_zipapps(directory: Path, keep: str, now: float | None = None) -> list[str]:
    """Remove the agent zipapps in the private `directory` other than `keep` older than PRUNE_AFTER_S; their names.

    Best effort: a file that cannot be looked at or removed stays, and building the agent never fails for it.
    """
    cutoff = (time.time() if now is None else now) - PRUNE_AFTER_S
    removed: list[str] = []
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return removed
    try:
        for name in os.listdir(fd):
            if name == keep or not _NAMES.fullmatch(name):
                continue
            with contextlib.suppress(OSError):
                info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and info.st_mtime < cutoff:
                    os.unlink(name, dir_fd=fd)
                    removed.append(name)
    except OSError:
        pass  # a listing that fails: nothing more is removed
    finally:
        os.close(fd)
    return sorted(removed)
