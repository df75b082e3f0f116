"""The controller's lock beside the store: one writer daemon per store, and a way for readers to ask if it is live.

An `fcntl.flock` on `<state_dir>/controller.lock`: the kernel drops it when the process dies, so a SIGKILLed
controller leaves no stale lock. The file holds the owner's pid for the refusal message only; the lock is the truth.

It is opened without following a symbolic link (it is truncated: a link planted in a shared state directory would
otherwise empty the file it points to) and created 0600. `make_private_dirs` creates the state directory 0700 for
the store too: only what this process creates is made private; existing directories and files keep their modes, so
an operator who gave a group read access (docs/controller.md) keeps it. An existing state directory is written in
only if no other user could plant or swap files in it (`check_private_state`, used for the store too), and the lock
must be a regular file of this user or root. Readers open it the same way, without blocking: a FIFO planted there
hung `controller status`, `gpus` and the dashboard in their open(); they now take it as no controller (`LockUnusable`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import stat
import time
from pathlib import Path
from typing import IO

from factoryctl.errors import FactoryError
from factoryctl.private_files import belongs_to_another

LOCK_NAME = "controller.lock"


class ControllerRunning(FactoryError):
    """Another controller already holds the store's lock."""


def lock_path(state_dir: Path) -> Path:
    """Where the lock lives: beside the store."""
    return state_dir / LOCK_NAME


class UnsafeStateDir(FactoryError):
    """Another user could have planted a file in the state directory, or swap one there: nothing is written in it."""


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with mode 0700; existing ones are left as they are."""
    missing = [path for path in (directory, *directory.parents) if not os.path.lexists(path)]
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.mkdir(path, 0o700)


def check_private_state(directory: Path, names: tuple[str, ...] = ()) -> bool:
    """Refuse to write in `directory` if another user could swap files in it, or through one of `names` in it.

    The directory (a link to one is followed: the user may have made it) must belong to this user or root, and not
    be writable by others unless sticky; a group that may write it is trusted like its owner (docs/controller.md
    grants operators write access so). Each existing file of `names` must be a regular file, no symbolic or hard link:
    SQLite follows a link at `factory.db` and would create the store where it points. In a directory others may write
    (sticky, as /tmp) it must also be this user's or root's; in one only its owner and group may write, a file of a
    group member is the store's own (an operator's `nodes drain` made `factory.db-wal` while no controller ran, and
    refusing it locked root's controller out, with a hint to delete committed rows).

    Returns whether anyone (not only the owner and group) may write the directory: then a file there must be this
    user's or root's too (`refuse_unsafe_state_file`'s `strangers`).
    """
    uid, quoted = os.geteuid(), shlex.quote(str(directory))
    found = os.stat(directory)
    problem = None
    if found.st_uid not in (0, uid):
        problem = belongs_to_another(found.st_uid, uid)
    elif found.st_mode & stat.S_IWOTH and not found.st_mode & stat.S_ISVTX:
        problem = f"is writable by others without the sticky bit (mode {stat.S_IMODE(found.st_mode):04o})"
    if problem is not None:
        raise UnsafeStateDir(
            f"the state directory {directory} {problem}, so another user could plant links where the store is "
            "written; nothing is written there.",
            f"make it yours alone (`chown {uid} {quoted}` and `chmod o-w {quoted}`), or set another state_dir in "
            "factory.yaml.",
        )
    strangers = bool(found.st_mode & stat.S_IWOTH)  # sticky, else refused above: anyone may have made a file here
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            refuse_unsafe_state_file(directory / name, os.lstat(directory / name), strangers)
    return strangers


def refuse_unsafe_state_file(path: Path, found: os.stat_result, strangers: bool = True) -> None:
    """UnsafeStateDir when `found` (the lstat of `path`) is a link, not a regular file, or a stranger's file.

    A stranger's: another user's (not root's), when `strangers` (anyone) may write its directory.
    """
    uid = os.geteuid()
    if stat.S_ISLNK(found.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISREG(found.st_mode):
        problem = "is not a regular file"
    elif strangers and found.st_uid not in (0, uid):
        problem = belongs_to_another(found.st_uid, uid)
    elif found.st_nlink > 1:
        problem = f"has {found.st_nlink} hard links"
    else:
        return
    raise UnsafeStateDir(
        f"{path} {problem}, so writing it could write a file someone else chose; it is not opened.",
        f"if it is not yours, move it aside (`mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.aside')}`: it "
        "is made again; a -wal file may hold the store's newest rows); to keep the store elsewhere, set state_dir "
        "in factory.yaml to that directory instead of linking to it.",
    )


class LockUnusable(FactoryError, OSError):
    """The lock file is a symbolic link or not a regular file (a FIFO, a directory): no controller can hold it.

    An OSError too: a reader that cannot look at the lock (a state_dir it cannot search) takes that as no controller
    known, and so takes this (the dashboard, metrics); `controller status` lets it reach the CLI, which says what is
    wrong with the file and how to fix it.
    """


def _open_lock(path: Path, flags: int) -> IO[str]:
    """The lock file opened with `flags`, never through a symbolic link; LockUnusable if it is not a regular file.

    Opened without blocking (then made blocking again): a FIFO planted at the lock's path blocked every reader's open
    for a writer that never came (`controller status`, `gpus` and the dashboard hung); O_RDWR does not block, but
    the FIFO is no lock either.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LockUnusable(
                f"the controller lock {path} is a symbolic link; it is not followed.",
                f"remove the link (`rm {shlex.quote(str(path))}`); the controller creates the lock file itself.",
            ) from exc
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise LockUnusable(
                f"the controller lock {path} is not a regular file (a FIFO, a socket or a directory): no controller"
                " can hold it.",
                f"move it aside (`mv {shlex.quote(str(path))} {shlex.quote(str(path) + '.aside')}`); the controller"
                " creates the lock file itself.",
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "r+" if flags & os.O_RDWR else "r", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise


class ControllerLock:
    """Held for the controller's whole life; `acquire` refuses when another process has it."""

    def __init__(self, state_dir: Path) -> None:
        self.path = lock_path(state_dir)
        self._file: IO[str] | None = None

    def acquire(self, attempts: int = 5) -> None:
        """Take the lock, retrying briefly (a reader's probe holds it for microseconds)."""
        try:
            make_private_dirs(self.path.parent)
            strangers = check_private_state(self.path.parent)
            handle = _open_lock(self.path, os.O_RDWR | os.O_CREAT)  # held until release()
            try:
                refuse_unsafe_state_file(self.path, os.fstat(handle.fileno()), strangers)  # a stranger's, a hard link
            except UnsafeStateDir:
                handle.close()
                raise
        except LockUnusable:
            raise
        except OSError as exc:
            raise FactoryError(
                f"cannot create the controller lock {self.path}: {exc.strerror or exc}.",
                f"check that {self.path.parent} is writable by this user.",
            ) from exc
        for attempt in range(attempts):
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == attempts - 1:
                    handle.seek(0)
                    owner = handle.read().strip() or "unknown"
                    handle.close()
                    raise ControllerRunning(
                        f"another controller (pid {owner}) is already running on the store in {self.path.parent}.",
                        "stop it first (`systemctl stop factoryctl` or kill that pid); only one controller may "
                        "write a store.",
                    ) from None
                time.sleep(0.05)
        try:
            _write_pid(handle.fileno())
        except OSError as exc:
            self._give_up(handle)
            raise _unwritable(self.path, exc) from exc
        self._file = handle

    def _give_up(self, handle: IO[str]) -> None:
        """Close the lock taken but not written; the file is removed if it is still the one at the path.

        Emptied (or half written) by this process, it names no pid: a full disk left a 0-byte lock behind.
        """
        with contextlib.suppress(OSError):
            held, now = os.fstat(handle.fileno()), os.lstat(self.path)
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
                os.unlink(self.path)  # still locked by this process: no other controller took it meanwhile
        handle.close()

    def replaced(self) -> bool:
        """Whether the lock file at `path` is gone or another file: then a second controller could start."""
        if self._file is None:
            return False
        try:
            now, held = os.stat(self.path), os.fstat(self._file.fileno())
        except OSError:
            return True
        return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)

    def release(self) -> None:
        """Drop the lock (also dropped by the kernel if the process dies)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _write_pid(fd: int) -> None:
    """Write this process's pid into the lock file at `fd`, in place of what it held; OSError if not all of it."""
    text = f"{os.getpid()}\n".encode()
    os.ftruncate(fd, 0)
    if os.pwrite(fd, text, 0) != len(text):  # a file size limit lets a write through in part
        raise OSError(errno.EFBIG, os.strerror(errno.EFBIG))


def _unwritable(path: Path, exc: OSError) -> FactoryError:
    """The sentence for a lock file that could be taken but not written (a full disk, a file size limit)."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FactoryError(
            f"cannot write the controller lock {path}: the disk holding it is full ({why}), so the controller does "
            "not start.",
            f"free disk space on the file system of {path.parent} (`df {shlex.quote(str(path.parent))}`).",
        )
    if exc.errno == errno.EFBIG:
        return FactoryError(
            f"cannot write the controller lock {path}: this process's file size limit is reached ({why}), so the "
            "controller does not start.",
            "raise the limit (`ulimit -f unlimited`, systemd's LimitFSIZE=infinity).",
        )
    return FactoryError(
        f"cannot write the controller lock {path}: {why}, so the controller does not start.",
        f"check that {path.parent} is writable by this user.",
    )


def controller_is_running(state_dir: Path) -> bool:
    """Whether a live process holds the controller lock of this state dir (not if the file is none it could hold)."""
    try:
        return controller_pid(state_dir) is not None
    except LockUnusable:
        return False


def controller_pid(state_dir: Path) -> int | None:
    """The pid of the live controller holding this state dir's lock: None if none runs, 0 if the file names none.

    `acquire` writes the pid right after taking the lock, so 0 lasts an instant unless the file was tampered with.
    LockUnusable when the lock is a symbolic link or not a regular file: it is opened as `acquire` opens it, so a
    FIFO there never blocks the reader.
    """
    path = lock_path(state_dir)
    try:
        handle = _open_lock(path, os.O_RDONLY)
    except LockUnusable:
        raise
    except OSError:
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        text = handle.read().strip()
        return int(text) if text.isdigit() else 0
    except OSError:
        return None
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
    finally:
        handle.close()
