"""What a failed SQLite call means for the store, as one table: how each failure is recognised, said, and fixed.

`StoreConnection` turns every sqlite3 failure into a `StoreError` whose sentence names the file and what was not
done, and whose hint says what to do. This module holds that mapping as data (`FAILURES`), so a new kind of
failure is one more row rather than one more branch. A failure is recognised by SQLite's result code
(`sqlite_errorname`, Python 3.11+, reduced to its primary code: `SQLITE_IOERR_WRITE` is an `SQLITE_IOERR`), and by
words of its message when it carries no code (an older Python, an error raised by the sqlite3 module itself) or a
code no row names. The rows are tried in order and the first that matches wins, so the order is part of the
meaning: a corrupt file is said before anything else, and a bare "disk I/O error" is only called read-only, a
file size limit or a full disk when the file system says so (`Situation`). A full disk is mostly SQLite's own
SQLITE_FULL, but where SQLite grows a file other than by write() (the `-shm` index every opener of a WAL store
makes, a reader's too) no space left is a bare "disk I/O error": every command said it in SQLite's words, with a
hint to rerun with --debug.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: SQLite opens no file whose path is this many bytes or more (the store's longest is `factory.db-wal`).
SQLITE_MAX_PATH_BYTES = 505
#: The most one SQLite write adds to a file: a WAL frame (a page of at most 64 KiB and its 24-byte header), twice.
_ONE_WRITE = 2 * (65536 + 24)
#: Below this much free space on the store's disk, a bare "disk I/O error" is taken for a full disk.
DISK_FULL_BELOW_BYTES = 1 << 20

#: What a failed write did not do, by the `doing` its caller names (for "..., so the samples were not saved.").
_NOT_DONE = {
    "samples": "the samples were not saved",
    "rollup": "the minute rollups were not saved",
    "prune": "old rows were not deleted",
    "meta": "the value was not saved",
    "events": "the events were not saved",
    "audit entry": "the audit entry was not saved",
    "drain": "the drain was not saved",
    "open": "it cannot be opened for writing",
}


def write_denied(path: Path, readonly: bool) -> bool:
    """Whether the store or its WAL cannot be opened for writing any more (after a bare "disk I/O error").

    A file made read-only under an open connection (`chattr +i`, a read-only remount) fails SQLite's next write as
    a bare "disk I/O error"; opening the files for writing tells that apart from a failing disk.
    """
    if readonly:
        return False
    for name in (path, path.with_name(path.name + "-wal")):
        try:
            os.close(os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC))
        except OSError as err:
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return True
    return False


def file_size_limit_reached(path: Path) -> str | None:
    """The file size limit (RLIMIT_FSIZE) as `1.5 MiB`, if the store or its WAL is one write short of it, else None.

    Past the limit write() fails with EFBIG (Python ignores SIGXFSZ), which SQLite reports as a bare "disk I/O
    error"; a file that has grown up to the limit tells that apart from a failing disk.
    """
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if soft == resource.RLIM_INFINITY:
        return None
    sizes = []
    for name in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(OSError):
            sizes.append(name.stat().st_size)
    if not sizes or max(sizes) + _ONE_WRITE <= soft:
        return None
    return f"{soft / 1024**2:.1f} MiB" if soft >= 1024**2 else f"{soft // 1024} KiB"


def disk_free(path: Path) -> int | None:
    """Bytes this user may still write on the disk holding the store at `path` (root: the blocks kept for root too).

    None when the file system cannot say (its directory gone, no statvfs).
    """
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return None
    blocks = found.f_bfree if os.geteuid() == 0 else found.f_bavail
    return blocks * found.f_frsize


class Situation:
    """What a failure's sentence may name, and the file system's answers, each asked once and only when needed."""

    def __init__(
        self, path: Path, doing: str, error: sqlite3.Error, readonly: bool, immutable: bool, busy_timeout_s: float
    ) -> None:
        self.where = path
        self.doing = doing
        self.error = error
        self.readonly = readonly
        self.immutable = immutable
        self.busy_timeout_s = busy_timeout_s
        self.not_done = _NOT_DONE.get(doing, f"the {doing} did not happen")
        if doing == "open" and readonly:  # a reader: it never meant to write
            self.not_done = "it cannot be opened"

    @functools.cached_property
    def write_denied(self) -> bool:
        """Whether the store's files cannot be opened for writing (`write_denied`)."""
        return write_denied(self.where, self.readonly)

    @functools.cached_property
    def size_limit(self) -> str | None:
        """This process's file size limit, when the store reached it (`file_size_limit_reached`)."""
        return file_size_limit_reached(self.where)

    @functools.cached_property
    def free(self) -> int | None:
        """The free bytes on the store's disk (`disk_free`)."""
        return disk_free(self.where)

    @property
    def free_kib(self) -> int:
        """The free space on the store's disk in whole KiB (0 when unknown)."""
        return (self.free or 0) // 1024

    @property
    def disk_full(self) -> bool:
        """Whether the store's disk has less than `DISK_FULL_BELOW_BYTES` free."""
        return self.free is not None and self.free < DISK_FULL_BELOW_BYTES

    @functools.cached_property
    def path_bytes(self) -> int:
        """The store path's length in bytes, as SQLite counts it."""
        return len(os.fsencode(self.where))


def _always(_: Situation) -> bool:
    return True


@dataclass(frozen=True)
class Failure:
    """One kind of SQLite failure: its result codes, the words of its message, and what to say.

    `message` and `hint` are `str.format` templates over the `Situation` (`{s.where}`, `{s.not_done}`, ...).
    A `damaged` failure is said by `StoreDamaged` (which has its own words) instead.
    """

    codes: tuple[str, ...]
    words: tuple[str, ...]
    message: str
    hint: str
    when: Callable[[Situation], bool] = _always
    damaged: bool = False

    def matches_code(self, code: str, situation: Situation) -> bool:
        """Whether SQLite's primary result `code` is this failure's (and its condition holds)."""
        return code in self.codes and self.when(situation)

    def matches_text(self, text: str, situation: Situation) -> bool:
        """Whether the lower-cased message `text` has one of this failure's words (and its condition holds)."""
        return any(word in text for word in self.words) and self.when(situation)


_CORRUPT = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_CORRUPT_WORDS = ("not a database", "malformed", "corrupt")
_READ_ONLY = "the store at {s.where} is read-only for this user, so {s.not_done}."
_READ_ONLY_HINT = (
    "give this user write access to {s.where} and its directory (owner and mode, no `chattr +i`, not a read-only "
    "mount), or set state_dir in factory.yaml."
)
_FULL_HINT = "free disk space, or shorten controller.raw_retention in factory.yaml."
_CANNOT_OPEN = ("SQLITE_CANTOPEN",)
_CANNOT_OPEN_WORDS = ("unable to open",)

#: Every known failure, in the order they are tried (the first match wins).
FAILURES: tuple[Failure, ...] = (
    Failure(  # a writer changed the file mid-query under a reader that cannot lock it
        _CORRUPT,
        _CORRUPT_WORDS,
        "the store at {s.where} changed while it was being read.",
        "run the command again.",
        when=lambda s: s.immutable,
    ),
    Failure(_CORRUPT, _CORRUPT_WORDS, "", "", damaged=True),
    Failure(("SQLITE_READONLY",), ("readonly", "read-only"), _READ_ONLY, _READ_ONLY_HINT),
    Failure(("SQLITE_IOERR",), ("disk i/o",), _READ_ONLY, _READ_ONLY_HINT, when=lambda s: s.write_denied),
    Failure(
        ("SQLITE_FULL",),
        ("full",),
        "the store at {s.where} is full (the disk or the database size limit), so {s.not_done}.",
        _FULL_HINT,
    ),
    Failure(  # EFBIG, which SQLite reports as a bare "disk I/O error"
        ("SQLITE_IOERR",),
        ("disk i/o",),
        "the store at {s.where} reached this process's file size limit ({s.size_limit}: `ulimit -f`, systemd's "
        "LimitFSIZE=), so {s.not_done}.",
        "raise the limit (`ulimit -f unlimited`, LimitFSIZE=infinity), or shorten controller.raw_retention in "
        "factory.yaml.",
        when=lambda s: s.size_limit is not None,
    ),
    Failure(
        ("SQLITE_BUSY", "SQLITE_LOCKED"),
        ("locked", "busy"),
        "the store at {s.where} stayed locked by another writer for {s.busy_timeout_s:g} s, so {s.not_done}.",
        "another factoryctl is writing; retry, or check with `factoryctl controller status` that it is not stuck.",
    ),
    Failure(
        _CANNOT_OPEN,
        _CANNOT_OPEN_WORDS,
        "cannot open the store at {s.where}: its path is {s.path_bytes} bytes long, and SQLite opens no file whose "
        f"path is {SQLITE_MAX_PATH_BYTES} bytes or more.",
        "set a shorter state_dir in factory.yaml (or a shorter XDG_STATE_HOME).",
        when=lambda s: s.path_bytes + len("-wal") >= SQLITE_MAX_PATH_BYTES,
    ),
    Failure(
        _CANNOT_OPEN,
        _CANNOT_OPEN_WORDS,
        "cannot open the store at {s.where}.",
        "check that {s.where.parent} exists and this user may read it (and write it, to change the store).",
    ),
    Failure(  # ENOSPC where SQLite says no SQLITE_FULL (module docstring); last: a read-only file is said as such
        ("SQLITE_IOERR",),
        ("disk i/o",),
        "the disk holding the store at {s.where} is full ({s.free_kib} KiB free), so {s.not_done}.",
        _FULL_HINT,
        when=lambda s: s.disk_full,
    ),
)

#: When no row matches: what happened, in SQLite's words.
UNKNOWN = Failure((), (), "the store at {s.where} failed ({s.doing}): {s.error}.", "rerun with --debug for details.")


def primary_code(error: sqlite3.Error) -> str | None:
    """SQLite's primary result code of `error` (`SQLITE_IOERR` for `SQLITE_IOERR_WRITE`); None without one.

    Python 3.11+ gives errors raised by SQLite a `sqlite_errorname`; errors the sqlite3 module raises itself (a
    closed connection) and every error of an older Python have none.
    """
    name = getattr(error, "sqlite_errorname", None)
    if not isinstance(name, str) or not name.startswith("SQLITE_"):
        return None
    return "_".join(name.split("_", 2)[:2])


def classify(situation: Situation) -> Failure:
    """The row of `FAILURES` that says `situation.error`: by its result code, else by its words, else `UNKNOWN`."""
    code = primary_code(situation.error)
    if code is not None:
        for failure in FAILURES:
            if failure.matches_code(code, situation):
                return failure
    text = str(situation.error).lower()
    for failure in FAILURES:
        if failure.matches_text(text, situation):
            return failure
    return UNKNOWN
