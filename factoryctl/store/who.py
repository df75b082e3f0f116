"""Who made a change: the login name written with every drain and audited power-limit change, and the process.

`getpass.getuser()` raises where the uid has no passwd entry and USER/LOGNAME are unset (a container started with
an arbitrary uid, a cron job with a bare environment); the change itself must not fail on that, and the record
says "unknown" rather than nothing. The name comes from LOGNAME/USER first, which anyone can set: its control
characters are escaped (`escape_controls`), so the records shown later (`audit`, drains) cannot drive the terminal.

A power-limit request also records the process that asked it (`this_run`): a `power set` killed with SIGKILL leaves
its requests `unknown`, and only a later command that can tell that process is gone (`run_ended`) closes them
honestly. A pid alone is reused (after a reboot, or once the kernel wraps around), so the run is the host, the pid,
the kernel's boot id and the process's start time since boot: a pid alive now with another start time, or a boot id
of this host that is not the current one, is another process, and the run's is gone.
"""

from __future__ import annotations

import getpass
import os
import socket
from dataclasses import dataclass

from factoryctl.model.telemetry import escape_controls

#: The longest login name kept (LOGNAME can be anything): a longer one is cut, so no record widens every table.
MAX_LOGIN_CHARS = 64


def login_name() -> str:
    """The login name of this process's user, or "unknown" when the system has none."""
    try:
        name = escape_controls(getpass.getuser())
    except (KeyError, OSError):
        return "unknown"
    return name if len(name) <= MAX_LOGIN_CHARS else name[: MAX_LOGIN_CHARS - 3] + "..."


@dataclass(frozen=True)
class Run:
    """A process, told apart from any later one with its pid: `host pid boot start` as recorded (`-`: not known).

    `boot` is the kernel's boot id and `start` the process's start time in clock ticks since boot (Linux /proc);
    elsewhere both are None, and only the pid is looked at.
    """

    host: str
    pid: int
    boot: str | None
    start: str | None

    def text(self) -> str:
        """The run as the audit log records it (`parsed` reads it back)."""
        return " ".join((self.host, str(self.pid), self.boot or "-", self.start or "-"))

    @staticmethod
    def parsed(text: str) -> Run | None:
        """The run `text` records; None for one this factoryctl cannot read (written by another version)."""
        fields = text.split(" ")
        if len(fields) != 4 or not fields[1].isdigit():
            return None
        host, pid, boot, start = fields
        return Run(host, int(pid), None if boot == "-" else boot, None if start == "-" else start)


def this_run() -> Run:
    """This process, as a later one tells whether it still runs (`run_ended`)."""
    pid = os.getpid()
    return Run(socket.gethostname(), pid, _boot_id(), _started(pid))


def run_ended(run: Run) -> bool:
    """Whether `run`'s process is known to have ended: False while it runs, and for a run of another host.

    A run of this host ended when the host booted since (another boot id), or no process has its pid now, or the
    one that has it started at another time (the pid was reused) or is a zombie (killed, not yet reaped).
    """
    if run.host != socket.gethostname():
        return False  # another host's process: this one cannot see it
    boot = _boot_id()
    if run.boot is not None and boot is not None and run.boot != boot:
        return True
    try:
        os.kill(run.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # another user's process has the pid: alive, but maybe another process (its start tells)
    if run.start is None:
        return False
    started = _started(run.pid)
    return started is not None and started != run.start


def _boot_id() -> str | None:
    """The kernel's id of this boot (Linux), else None."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as file:
            return file.read().strip() or None
    except (OSError, ValueError):
        return None


def _started(pid: int) -> str | None:
    """When process `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat), `Z` for a zombie; None.

    A zombie's start time is its own, but it has ended: it is said as a start no run records, so it reads as ended.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as file:
            stat = file.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # the command name before it, in parentheses, may hold anything
    if len(fields) < 20:
        return None
    return "Z" if fields[0] in ("Z", "X") else fields[19]
