"""One agent at a time changes a node's power limits: an advisory `flock` on a per-node lock file.

Every `power set`, cron job, operator and dashboard cap starts its own agent, each over its own SSH session. A change
reads a GPU's limit, sets it and reads it again, and the audit log records that before and after; holding this lock
across the read-set-read makes every change one link of a chain, so no two changes start from the same `before_w`.
Every agent of the node finds the same lock file, whatever its cache directory (docs/agent-protocol.md, Power
limits):

- a simulated node: beside its state file in the simulator's state dir (`factoryctl.sim.storage.limits_lock_path`),
  one per simulated node, as several share a host;
- a real node: `/run/factoryctl-<euid>/gpu-limits.lock` for root (only root may create in /run, so no other user
  can take or plant it); for anyone else, and for root too when /run cannot hold it (not root's alone, mounted
  read-only, or refusing root's writes), `<home>/.local/state/factoryctl/<hostname>/gpu-limits.lock`. Both are
  decided, again before each change, from what every agent of the user on the node sees alike (the mounts, the user
  database's home, the kernel's host name; never the environment, which a cron job and a login do not share). The
  home is the user's own, so nobody else can plant anything there; the host name keeps nodes that share a home over
  NFS apart. Only root may change limits through NVML, so every agent that can change one shares root's lock.

The directory is made 0700 and must be a real directory of this user writable by nobody else, inside directories of
root's or this user's that nobody else can write (unless sticky); the file is opened without following a symbolic
link, must be a regular file of this user and is kept 0600, so another local user can neither hold it nor redirect
it (docs/security.md). When any of that fails, each change is refused with an error naming the path.

The file is opened for writing: over NFS, flock(2) places an exclusive lock only on a file opened so. The wait is
bounded (polled with LOCK_NB: a blocking flock cannot be given up), and the kernel releases the lock when its holder
dies, so a killed agent never leaves the node locked. Python 3.9 stdlib, like the whole agent.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pwd
import re
import stat
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional

DEFAULT_TIMEOUT_S = 5.0
MAX_TIMEOUT_S = 60.0


def requested_wait(request: Dict[str, Any]) -> float:
    """A change request's `lock_timeout_s` (default DEFAULT_TIMEOUT_S), or ValueError saying the rule.

    The agent and the nvidia-smi fallback take and refuse it alike.
    """
    wait = request.get("lock_timeout_s", DEFAULT_TIMEOUT_S)
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_TIMEOUT_S:
        raise ValueError(f"lock_timeout_s must be a number of seconds from 0 to {MAX_TIMEOUT_S:g}")
    return float(wait)


_POLL_S = 0.005
_LOCK_NAME = "gpu-limits.lock"


class LimitsLockError(Exception):
    """The lock file cannot be used (a symbolic link, another user's, the directory unusable); one clause."""


class LimitsLockTimeout(LimitsLockError):
    """Another agent held the lock at `path` for the whole wait."""

    def __init__(self, path: Path, timeout_s: float) -> None:
        super().__init__(f"another change held {path} for {timeout_s:g} s")
        self.path = path


def real_node_lock_path(uid: Optional[int] = None, run_can_hold: Optional[Callable[[Path], bool]] = None) -> Path:
    """Where every agent of this user on a real node locks its limits: under /run for root, else in its home.

    Root falls back to its home when `run_can_hold(/run/factoryctl-0)` is false (default: `run_can_hold_lock`).
    LimitsLockError when the user database has no home for `uid`.
    """
    uid = os.geteuid() if uid is None else uid
    run_directory = Path("/run") / f"factoryctl-{uid}"
    if uid == 0 and (run_can_hold or run_can_hold_lock)(run_directory):
        return run_directory / _LOCK_NAME
    return home_lock_directory(uid) / _LOCK_NAME


def home_lock_directory(uid: int) -> Path:
    """`<home>/.local/state/factoryctl/<hostname>`: this node's place in the home the user database gives `uid`.

    Not `$HOME` nor `$XDG_STATE_HOME`: a cron job's environment is not a login's, and the agent's may be cleared.
    """
    try:
        home = pwd.getpwuid(uid).pw_dir
    except KeyError:
        raise LimitsLockError(f"uid {uid} has no entry in the user database, so no home for the lock") from None
    if not home.startswith("/"):
        raise LimitsLockError(f"uid {uid}'s home {home!r} is not an absolute path, so no place for the lock")
    return Path(home) / ".local" / "state" / "factoryctl" / host_label()


def host_label(nodename: Optional[str] = None) -> str:
    """The kernel's host name (`nodename`) as one safe path component: other characters `_`, no leading dot."""
    name = os.uname().nodename if nodename is None else nodename
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".") or "_"


def run_can_hold_lock(directory: Path) -> bool:
    """Whether root's lock directory can be (or is) `directory` in /run, from facts every agent sees alike.

    /run must be a real directory of root's that nobody else can write, and the directory (or /run, while it is
    missing) must be on a read-write mount where the kernel lets root write (no immutable flag, no security module
    refusing it). A passing failure (a full /run) is not a reason to move: the lock then refuses, naming it, rather
    than letting one agent lock elsewhere than the others. A directory there that is not one is kept, and refused.
    """
    if not _root_only_directory(directory.parent):
        return False
    try:
        st = os.lstat(directory)
    except FileNotFoundError:
        return _writable_here(directory.parent)
    except OSError:
        return False
    return not stat.S_ISDIR(st.st_mode) or _writable_here(directory)


def _root_only_directory(path: Path) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def _writable_here(directory: Path) -> bool:
    """Whether the kernel lets this user write in `directory`: not on a read-only mount (EROFS), nor refused."""
    return os.access(directory, os.W_OK)


class LimitsLockGivenUp(LimitsLockError):
    """The wait for the lock at `path` was given up: whoever asked for the change is gone."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"gave up waiting for {path}")
        self.path = path


class LimitsLock:
    """The lock file `path`; `private` for one in a place other users reach (see the module docstring).

    With `locate`, the path is found again before each acquire (a real node's: /run may stop being usable), and
    `path` is the one found last (None until then, when none is given).
    """

    def __init__(self, path: Optional[Path], private: bool, locate: Optional[Callable[[], Path]] = None) -> None:
        if path is None and locate is None:
            raise ValueError("a limits lock needs a path or a way to locate it")
        self.path = path
        self.private = private
        self._locate = locate

    @contextlib.contextmanager
    def held(self, timeout_s: float, given_up: Optional[Callable[[], bool]] = None) -> Iterator[None]:
        """The lock held for the `with` block, waited for at most `timeout_s` (see `acquire`)."""
        fd = self.acquire(timeout_s, given_up)
        try:
            yield
        finally:
            self.release(fd)

    def acquire(self, timeout_s: float, given_up: Optional[Callable[[], bool]] = None) -> int:
        """Hold the lock, waiting at most `timeout_s`; returns the descriptor to `release`.

        LimitsLockTimeout when another agent held it all along, LimitsLockError when the file cannot be used or
        locked (a flock error such as NFS's ENOLCK names the file and the error), LimitsLockGivenUp as soon as
        `given_up()` is true while it waits (the agent's client went away: a change nobody will hear of must not
        land once the other change ends).
        """
        path = self._locate() if self._locate is not None else self.path
        assert path is not None  # __init__ has one or the other
        self.path = path
        fd = self._open(path)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return fd
                except (BlockingIOError, InterruptedError):
                    pass  # held by another agent, or a signal came: wait on
                except OSError as exc:
                    raise LimitsLockError(f"flock on {path} failed: {exc.strerror or exc}") from None
                if time.monotonic() >= deadline:
                    raise LimitsLockTimeout(path, timeout_s)
                if given_up is not None and given_up():
                    raise LimitsLockGivenUp(path)
                time.sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise

    @staticmethod
    def release(fd: int) -> None:
        """Let the next agent in (closing the descriptor drops the flock)."""
        os.close(fd)

    def _open(self, path: Path) -> int:
        if self.private:
            self._private_directory(path.parent)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC  # written to never, but NFS's flock needs it
        try:
            fd = os.open(path, flags, 0o600 if self.private else 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise LimitsLockError(f"{path} is a symbolic link (remove it)") from None
            raise LimitsLockError(f"cannot open {path}: {exc.strerror}") from None
        try:
            self._check_file(path, fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_file(self, path: Path, fd: int) -> None:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LimitsLockError(f"{path} is not a regular file (remove it)")
        if self.private:
            if st.st_uid != os.geteuid():
                raise LimitsLockError(f"{path} belongs to uid {st.st_uid}, not to this user (remove it)")
            if st.st_mode & 0o077:
                os.fchmod(fd, 0o600)  # ours: nobody else may open it, so nobody else can hold it

    @staticmethod
    def _private_directory(directory: Path) -> None:
        """Make the lock's directory (and missing parents) 0700; refuse one another user could reach or change.

        It must be a real directory of this user that nobody else can write, and so must every directory above it
        be root's or this user's, not writable by others unless sticky: else another user could move it away.
        """
        for missing in reversed([d for d in (directory, *directory.parents) if not os.path.lexists(d)]):
            try:
                os.mkdir(missing, 0o700)
            except FileExistsError:
                pass  # made meanwhile by another agent: checked below as any other
            except OSError as exc:
                raise LimitsLockError(f"cannot create {missing}: {exc.strerror}") from None
        try:
            st = os.lstat(directory)
        except OSError as exc:
            raise LimitsLockError(f"cannot examine {directory}: {exc.strerror}") from None
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
            raise LimitsLockError(f"{directory} is not a directory (remove it)")
        if st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise LimitsLockError(
                f"{directory} belongs to uid {st.st_uid} or is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
            )
        for above in (*directory.parents, *Path(os.path.realpath(directory)).parents):
            problem = others_can_change(above)
            if problem:
                raise LimitsLockError(f"{directory} is inside {above}, which {problem}")


def others_can_change(path: Path) -> Optional[str]:
    """Why another user could change what is inside `path` (a directory above the lock's, or a link to one), or None.

    Also the simulated driver's check of its state directories (factoryctl.sim.storage), which refuses links itself.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be examined ({exc.strerror})"
    if st.st_uid not in (0, os.geteuid()):
        return f"belongs to uid {st.st_uid} (neither root nor this user)"
    if stat.S_ISDIR(st.st_mode) and st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return f"is writable by others without the sticky bit (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
