"""A rank's processes wherever they went: its process group, and every process carrying its mark in its environment.

A rank runs in a process group of its own, which `kill` signals. A worker that calls `setsid` (a daemon, a
launcher that double-forks) leaves that group and, without this, every signal and the preemption grace with it:
it would run on after its job, on GPUs the scheduler gives to the next one. Slurm holds a job's processes in a
cgroup; an agent that is not root cannot. So the agent gives each rank's command a mark of its own
(`FACTORYCTL_RANK_MARK`, random, kept in its record): every process it starts inherits it, whatever its session,
and is found by reading `/proc/<pid>/environ`. Only this user's processes that started after the rank's command
are read (another user's environment is unreadable, and is no rank of ours), at most ENVIRON_LIMIT bytes each, in
one pass over /proc for any number of ranks; a process that vanishes midway, or whose environment cannot be read,
is passed over. A process started with an environment of its own (`env -i`, `sudo`) loses the mark and is not
found.

The other readings of /proc the ranks need live here too: whether a pid is still the process recorded (its start
time), how long it has run on the boot clock, whether a group has a live member. Linux only (/proc); elsewhere only
the process group is found. Python 3.9 and the standard library.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Set, Tuple

from factoryctl.sim.rank_registry import pid_alive

#: The variable each rank's command is started with: the rank's mark, found again in what it started.
MARK_VARIABLE = "FACTORYCTL_RANK_MARK"
#: The most bytes read of one process's environment (a few KiB as a rule; the kernel allows some MiB).
ENVIRON_LIMIT = 1024 * 1024


class RankProcess(NamedTuple):
    """A live process of a rank: its pid, state letter from /proc (`R`, `S`, `D`...), start and process group."""

    pid: int
    state: str
    start_ticks: int
    pgid: int


#: Which rank a search is about: its launch (job) and rank number.
RankKey = Tuple[str, int]


class Wanted(NamedTuple):
    """What is looked for, per rank: its process group and its mark (None: none of its own now, none recorded).

    `since`: when its command started (clock ticks since boot; None: unknown). What it started started later, so an
    older process's environment is not read.
    """

    pgid: Optional[int]
    mark: Optional[str]
    since: Optional[int] = None


def new_mark() -> str:
    """A fresh mark for one rank: 32 hex digits, so no two ranks (nor a guess) share one."""
    return secrets.token_hex(16)


def proc_readable() -> bool:
    """Whether this system has /proc to read processes from (Linux)."""
    return os.path.isdir("/proc/self")


def rank_processes(wanted: Mapping[RankKey, Wanted]) -> Dict[RankKey, List[RankProcess]]:
    """Each rank's live processes (zombies excluded): its group's members and the processes carrying its mark.

    One pass over /proc for every rank asked about; each list in pid order, a process listed once. Empty without
    /proc (the caller falls back on the process group alone: `live_group`).
    """
    found: Dict[RankKey, Dict[int, RankProcess]] = {key: {} for key in wanted}
    by_group: Dict[int, List[RankKey]] = {}
    by_mark: Dict[bytes, List[RankKey]] = {}
    for key, search in wanted.items():
        if search.pgid is not None:
            by_group.setdefault(search.pgid, []).append(key)
        if search.mark:
            by_mark.setdefault(f"{MARK_VARIABLE}={search.mark}".encode(), []).append(key)
    if not (by_group or by_mark) or not proc_readable():
        return {key: [] for key in wanted}
    marked = [search.since for search in wanted.values() if search.mark]
    oldest = min((0 if since is None else since for since in marked), default=0)
    uid = os.getuid()
    for pid in pids():
        process = process_status(pid)
        if process is None:
            continue
        owners: Set[RankKey] = set(by_group.get(process.pgid, ()))
        if by_mark and process.start_ticks >= oldest and owner(pid) == uid:
            owners.update(key for entry in environ_entries(pid) for key in by_mark.get(entry, ()))
        for key in owners:
            found[key][pid] = process
    return {key: [procs[pid] for pid in sorted(procs)] for key, procs in found.items()}


def own_group(record: Optional[Dict[str, Any]]) -> Optional[int]:
    """The rank's process group number, unless a later process took it (its leader's pid is another's now)."""
    pgid = record.get("pgid") if record else None
    if record is None or not isinstance(pgid, int) or isinstance(pgid, bool) or pgid <= 1:
        return None
    if start_ticks(pgid) is not None and not is_process(pgid, record.get("start_ticks")):
        return None
    return pgid


def live_group(record: Optional[Dict[str, Any]]) -> Optional[int]:
    """The rank's process group while a member lives (its command, or what it started), else None.

    Never a group whose number a later process took: a leader pid that is another process's now means it ended.
    """
    pgid = own_group(record)
    if pgid is None:
        return None
    try:
        os.killpg(pgid, 0)  # most ended groups end here, without reading /proc
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return pgid if group_lives(pgid) else None


def group_lives(pgid: int) -> bool:
    """Whether process group `pgid` has a member that is no zombie (dead children of pid 1 wait to be reaped).

    Read from /proc; without it, whether the group exists at all.
    """
    if not proc_readable():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return any(process is not None and process.pgid == pgid for process in map(process_status, pids()))


def start_ticks(pid: int, zombie: bool = False) -> Optional[int]:
    """When process `pid` started (clock ticks since boot, /proc/<pid>/stat); None when gone.

    Also None for a zombie, which has ended, unless `zombie` (a command that ended at once, not yet reaped).
    """
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or (fields[0] in ("Z", "X") and not zombie):
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def is_process(pid: object, ticks: object) -> bool:
    """Whether `pid` lives and is still the process that started at `ticks` (not a later one given its pid)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    now = start_ticks(pid)
    if now is None:
        return not proc_readable() and pid_alive(pid)  # no /proc (not Linux): whether it lives at all
    return ticks is None or now == ticks


def running_for(ticks: object) -> Optional[float]:
    """Seconds since a process that started `ticks` clock ticks after boot, on the boot clock (/proc/uptime).

    Neither clock steps with the wall clock, so a walltime judged on this is not moved by NTP setting either host's
    time; None without /proc or a start time.
    """
    if isinstance(ticks, bool) or not isinstance(ticks, int):
        return None
    try:
        with open("/proc/uptime", encoding="ascii") as uptime:
            since_boot = float(uptime.read().split()[0])
        return max(0.0, since_boot - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def pids() -> List[int]:
    """Every pid in /proc now (a process may end before it is read)."""
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def _stat_fields(pid: int) -> Optional[List[str]]:
    """The fields of /proc/<pid>/stat after the command's name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat[stat.rfind(")") + 2 :].split()


def process_status(pid: int) -> Optional[RankProcess]:
    """The live process `pid` from /proc/<pid>/stat; None when gone or a zombie."""
    fields = _stat_fields(pid)
    if fields is None or len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    try:
        return RankProcess(pid, fields[0], int(fields[19]), int(fields[2]))
    except ValueError:
        return None


def owner(pid: int) -> Optional[int]:
    """The user owning process `pid` (its /proc directory's); None when it is gone."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def environ_entries(pid: int) -> List[bytes]:
    """The `NAME=value` entries of the process's environment (as it started); none when it cannot be read."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/environ", "rb") as f:
        return f.read(ENVIRON_LIMIT).split(b"\0")
    return []
