"""Rank processes that get away from their process group or outlive SIGKILL, for the tests of finding them.

`DAEMON` is a rank's command that starts a worker in a session of its own (`setsid` after a double fork, as
daemons and some launchers do), so the rank's process group no longer holds it. `HungMount` holds a process in
state D past SIGKILL the way a hung NFS server does: a FUSE file system whose server (the test process) has read the
process's request and never answers it; a fatal signal then leaves the process waiting uninterruptibly until the
connection ends, which closing the device does. FUSE needs root and /dev/fuse (the tests run as root).
`EscapedProcesses` kills, after the test, every such process a test started: none outlives it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import struct
from collections.abc import Iterator
from pathlib import Path

from waiting import wait_for

from factoryctl.agent.ranks import start_ticks

#: argv[1]: where the worker writes its pid; argv[2]: how long the command itself sleeps after starting it (it may
#: end at once, as a launcher that leaves its worker behind). The worker sleeps until killed.
DAEMON = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        open(sys.argv[1] + '.tmp', 'w').write(str(os.getpid()))
        os.replace(sys.argv[1] + '.tmp', sys.argv[1])
        time.sleep(300)
    os._exit(0)
os.wait()
time.sleep(float(sys.argv[2]))
"""

FUSE_INIT = 26
MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2


class EscapedProcesses:
    """The processes a test found outside its ranks' groups, each SIGKILLed after the test if it still lives."""

    def __init__(self) -> None:
        self.found: list[tuple[int, int]] = []

    def pid_in(self, path: Path) -> int:
        """The pid a `DAEMON` worker wrote to `path` (waited for), remembered to be killed after the test."""
        wait_for(path.exists, what=f"the worker writing {path.name}")
        pid = int(path.read_text())
        ticks = start_ticks(pid)
        assert ticks is not None, f"the worker {pid} ended before it was found"
        self.found.append((pid, ticks))
        return pid

    def kill_all(self) -> None:
        for pid, ticks in self.found:
            if start_ticks(pid) == ticks:  # still that process, not a pid reused since
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class HungMount:
    """A mounted FUSE file system that answers nothing after its start: who touches it waits, as on a hung server."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def hold(self, timeout: float = 30.0) -> int:
        """Wait for the next request to the file system and leave it unanswered; its opcode."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        assert ready, f"no request reached the FUSE mount within {timeout:g} s"
        return int(struct.unpack_from("<IIQ", os.read(self.fd, 1 << 20))[1])


@contextlib.contextmanager
def hung_mount(path: Path) -> Iterator[HungMount]:
    """A FUSE file system mounted on `path` (made), hanging every request; at the end its waiters freed, unmounted."""
    libc = ctypes.CDLL(None, use_errno=True)
    path.mkdir(exist_ok=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    try:
        options = f"fd={fd},rootmode=40000,user_id={os.getuid()},group_id={os.getgid()}".encode()
        if libc.mount(b"factoryctl-hung", bytes(path), b"fuse", MS_NOSUID | MS_NODEV, options) != 0:
            raise OSError(ctypes.get_errno(), f"cannot mount a FUSE file system on {path}")
        try:
            _answer_init(fd)
            yield HungMount(fd)
        finally:
            os.close(fd)  # the connection ends: every process waiting on it gets an error (and its pending SIGKILL)
            fd = -1
            libc.umount2(bytes(path), MNT_DETACH)
    finally:
        if fd >= 0:
            os.close(fd)


def _answer_init(fd: int) -> None:
    """Answer the kernel's FUSE_INIT (protocol 7.31, no features), so that requests come to be held."""
    ready, _, _ = select.select([fd], [], [], 30.0)
    assert ready, "the kernel sent no FUSE_INIT"
    request = os.read(fd, 1 << 20)
    _, opcode, unique = struct.unpack_from("<IIQ", request)
    assert opcode == FUSE_INIT, f"the first FUSE request was {opcode}, not INIT"
    init_out = struct.pack("<IIIIHHIIHHI7I", 7, 31, 0, 0, 0, 0, 4096, 1, 0, 0, 0, *[0] * 7)
    os.write(fd, struct.pack("<IiQ", 16 + len(init_out), 0, unique) + init_out)
