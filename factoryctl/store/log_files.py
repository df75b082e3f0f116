"""The controller's `-wal` and `-shm` beside the store: set aside when another file is moved over the store.

SQLite finds a store's write-ahead log (`factory.db-wal`) and its index (`factory.db-shm`) by the store's name, not
by the file it has open. A file moved over the store while the controller runs (a backup restored by `mv`) takes
the name, but the `-wal` and `-shm` there are still the controller's, holding the newest pages of the file it had
open; SQLite neither folds nor deletes them when a connection to a moved store closes. Left there, the next opener
laid those pages over the new file: a backup read with the old store's newest pages (its own rows gone when the
backup came from another store), and `PRAGMA integrity_check` said ok.

So the controller, on finding its store replaced, renames its `-wal` away (`factory.db-wal.replaced-PID`: the
replaced file's newest rows, should that file have been kept) and deletes its `-shm` (an index SQLite rebuilds from
a `-wal`). Only files that are still the ones it opened (same device and inode): a `-wal` moved in with the new file
is that file's own. SQLite keeps both open by descriptor, so the controller's last writes still reach them.
"""

from __future__ import annotations

import os
from pathlib import Path


def _identity(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at `path`, None when there is none."""
    try:
        found = os.lstat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


class StoreLogFiles:
    """The `-wal` and `-shm` of the store at `store` as they are now: taken right after the controller opened it."""

    def __init__(self, store: Path) -> None:
        self.wal = store.with_name(f"{store.name}-wal")
        self.shm = store.with_name(f"{store.name}-shm")
        self._opened = {path: _identity(path) for path in (self.wal, self.shm)}

    def _still_ours(self, path: Path) -> bool:
        opened = self._opened[path]
        return opened is not None and _identity(path) == opened

    def set_aside(self) -> str:
        """Move this controller's `-wal` and `-shm` away from the store's name; a sentence for the log (or "").

        The `-wal` is renamed (deleted when empty), the `-shm` deleted; a file that is not the one opened is left.
        """
        aside = self.wal.with_name(f"{self.wal.name}.replaced-{os.getpid()}")
        try:
            kept = self._move_wal(aside)
            if self._still_ours(self.shm):
                os.unlink(self.shm)
        except OSError as exc:
            return (
                f" Its {self.wal.name} and {self.shm.name} could not be set aside ({exc.strerror or exc}): move them "
                "away before the controller starts again, else SQLite lays the replaced file's newest pages over the "
                "file now there."
            )
        if not kept:
            return ""
        return (
            f" Its write-ahead log, which SQLite would have laid over the file now there, is set aside as {aside} "
            "(the newest rows of the file it replaced: if that file was kept, move this beside it as OLD-wal, OLD "
            "being its path)."
        )

    def _move_wal(self, aside: Path) -> bool:
        """Rename the `-wal` to `aside` when it is ours and holds anything (delete it when empty): whether renamed."""
        if not self._still_ours(self.wal):
            return False
        if not os.lstat(self.wal).st_size:
            os.unlink(self.wal)
            return False
        os.rename(self.wal, aside)
        return True
