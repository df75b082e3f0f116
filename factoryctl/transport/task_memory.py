"""Which limit of this machine stopped a thread or a process: its task limit, or its address space (`ulimit -v`).

CPython says `can't start new thread` for both, and a fork refused by a pids cgroup (systemd's TasksMax=) says only
EAGAIN, so the words of the error named the task limit under `ulimit -v 1G`, where the task limit was nowhere near:
each thread reserved a 64 MiB malloc arena besides its stack, and 12 threads filled the gigabyte. What is read here
(the cgroup's pids.max and pids.current, `ulimit -u`, `ulimit -v`) names the limit that is reached, with its value,
and under a finite address-space limit glibc's malloc is held to a few arenas (`cap_malloc_arenas`, as
MALLOC_ARENA_MAX=2 would: measured on 48 local nodes under `ulimit -v 1G`, 43 nodes down without, none with).
Everything is read at the moment of the error; nothing is cached, since a limit can change while the controller runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: glibc's mallopt parameter for the most arenas (malloc.h's M_ARENA_MAX).
_M_ARENA_MAX = -8
#: Arenas kept under a finite address-space limit: MALLOC_ARENA_MAX=2's, the value measured to fit.
ARENAS_UNDER_LIMIT = 2
#: A cgroup this close to its pids.max (tasks left) counts as the limit reached: the count drops as threads end.
_NEAR_TASKS = 8

_arenas_capped = False


def soft_limit(name: str, *, unlimited_as_none: bool = True) -> int | None:
    """The soft value of `resource.<name>` (`RLIMIT_AS`...), None where unreadable, or unlimited if `unlimited_as_none`.

    The one getrlimit reader of this machine's limits (`ulimit -v`, `-u`, `-n`): host_limits.py reads `-n` with it.
    """
    try:
        import resource

        soft = resource.getrlimit(getattr(resource, name))[0]
    except (ImportError, OSError, ValueError, AttributeError):
        return None
    unlimited = soft == resource.RLIM_INFINITY or soft < 0
    return None if unlimited and unlimited_as_none else int(soft)


def address_space_limit() -> int | None:
    """This process's soft address-space limit in bytes (`ulimit -v`, systemd's LimitAS=), None when unlimited."""
    return soft_limit("RLIMIT_AS")


def mib(size: int) -> str:
    """A size as `ulimit -v` users think of it: `1 GiB`, `512 MiB`."""
    if size >= 1 << 30 and size % (1 << 30) == 0:
        return f"{size >> 30} GiB"
    return f"{size >> 20} MiB"


def _cgroup_dirs() -> list[Path]:
    """The directories of this process's pids cgroup (v1 or v2), innermost first, then each ancestor."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    found: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        controllers, path = parts[1].split(","), parts[2].strip("/")
        if "pids" in controllers:
            roots = [Path("/sys/fs/cgroup/pids")]
        elif parts[0] == "0" and parts[1] == "":
            roots = [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")]
        else:
            continue
        for root in roots:
            here = root / path if path else root
            while True:
                found.append(here)
                if here == root:
                    break
                here = here.parent
    return found


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def cgroup_task_limits() -> list[tuple[int, int]]:
    """(pids.max, pids.current) of each cgroup this process is in that has a finite pids.max, innermost first."""
    limits: list[tuple[int, int]] = []
    for folder in _cgroup_dirs():
        most = _read_int(folder / "pids.max")  # "max" (no limit) is not a number
        if most is not None:
            limits.append((most, _read_int(folder / "pids.current") or 0))
    return limits


def process_limit() -> int | None:
    """The soft `ulimit -u` (RLIMIT_NPROC), None when unlimited or unreadable."""
    return soft_limit("RLIMIT_NPROC")


def task_limit_near() -> bool:
    """Whether a pids cgroup of this process has (almost) no task left: then that is the limit reached."""
    return any(current >= most - _NEAR_TASKS for most, current in cgroup_task_limits())


def task_limit_shown() -> str:
    """` (pids.max is 40)`: the tightest task limit found, for the error's words; empty when none is known."""
    cgroups = cgroup_task_limits()
    if cgroups:
        most = min(cgroups, key=lambda pair: pair[0] - pair[1])[0]
        return f" (pids.max is {most})"
    nproc = process_limit()
    return f" (ulimit -u is {nproc})" if nproc is not None else ""


def cap_malloc_arenas() -> None:
    """Under a finite address-space limit, keep glibc's malloc to ARENAS_UNDER_LIMIT arenas (once per process).

    glibc gives each thread that finds the arenas busy its own, reserving 64 MiB of address space each (on 64-bit):
    under `ulimit -v 1G` a dozen threads used it up, and every node past them was down. A MALLOC_ARENA_MAX the user
    set is theirs (glibc read it at start), and where mallopt cannot be found (not glibc) nothing changes.
    """
    global _arenas_capped
    if _arenas_capped:
        return
    _arenas_capped = True
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ or address_space_limit() is None:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, ARENAS_UNDER_LIMIT)
    except (OSError, AttributeError):
        return
