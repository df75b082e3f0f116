"""Limits of this machine, not of the node: open files and threads, which a large fleet runs out of.

Reaching N nodes at once takes a socket and a few threads per node (the controller keeps about 4 threads per SSH
node: the link, paramiko's transport, the agent's reader and stderr; one liveness watch serves them all). Out of either, the
failure surfaced as the node's fault ("does not speak SSH (can't start new thread)", `OSError: [Errno 24]`) with
the hint to check the node, and a controller that could not start a link's thread crashed. So the open-file soft
limit is raised to the hard limit before many connections are opened (as Go's runtime and most daemons do), a
fan-out works on no more nodes at once than the limit then has room for (`fanout_within_file_limit`: `ulimit -n`
sets the hard limit too), and a failure of either kind is one `local` error that names this machine's limit and
how to raise it.

The raise is this process's own: a program it starts on this machine (a `local` node's command or agent) gets the
user's soft limit back (`with_user_file_limit`), as it would from the user's shell; one that uses select() breaks
past descriptor 1024, and a child should see the limit its user set. Once the limit was raised, a child is started
through a few lines of this Python (`-I -S`), which set the limit and exec the program in the same process (same
pid, same process group, the environment untouched: `/bin/sh` was tried first, but dash drops variables whose names
are not shell identifiers, such as `MY-TOKEN`). The alternatives are wrong: subprocess's `preexec_fn` runs Python in
the forked child and can deadlock it while other threads hold locks, `posix_spawn` has no limit attribute, and
`prlimit` on the child's pid comes too late (Popen returns after the exec: the program is already running, and may
have forked or opened its descriptors, with the raised limit). Before a raise nothing is wrapped, so small fleets
pay nothing.
"""

from __future__ import annotations

import errno
import os
import sys
import threading

from factoryctl.errors import NodeError

#: NodeError kind of a failure caused by a limit of this machine (exit 1: nothing is wrong with the node).
LOCAL = "local"
#: What to raise when this machine is out of threads (the start of a hint).
TASK_LIMIT_HINT = "raise the limit (TasksMax= in the controller's systemd unit, `ulimit -u`)"
#: Threads the controller keeps per SSH node (see the module docstring), for the hint.
THREADS_PER_NODE = 4

#: Descriptors one node in flight holds at most, by transport (measured in Session 13: 64 local nodes in flight
#: peaked at 326 open descriptors, 50 SSH nodes at 151). A local node's agent keeps 3 pipe ends, and its start opens
#: 5 more for a moment; an SSH node keeps its socket and the pipe pair paramiko makes for a channel waited on, and
#: reads its key and known_hosts files while it connects. Another transport is counted as the costliest.
FILES_PER_NODE = {"local": 6, "ssh": 4}
#: Descriptors a fan-out leaves free: stdio, the store and its journal, a log, modules still to import, an error's
#: last words.
FILE_MARGIN = 32

#: What a local child is started through once the limit was raised: set the user's soft limit, exec the program
#: (argv: the soft limit, then the program's argv); a program that cannot run fails as an unwrapped one does (127 when
#: it is not found, 126 when it is found but cannot run, and bash's `command not found` for a name not on PATH).
_RESTORE_AND_EXEC = """import errno, os, resource, sys
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
except (OSError, ValueError):
    pass
try:
    os.execvp(sys.argv[2], sys.argv[2:])
except OSError as exc:
    missing = exc.errno == errno.ENOENT and "/" not in sys.argv[2]
    sys.stderr.write("%s: %s\\n" % (sys.argv[2], "command not found" if missing else exc.strerror))
    sys.stderr.flush()
    os._exit(127 if exc.errno == errno.ENOENT else 126)
"""

_raised = False
_user_lock = threading.Lock()
#: (soft, hard) open-file limits as the user gave them, read before any raise; None until read or where unreadable.
_user_limits: tuple[int, int] | None = None
_user_read = False


def user_file_limits() -> tuple[int, int] | None:
    """The (soft, hard) open-file limits this process was started with, before `raise_open_file_limit`."""
    global _user_limits, _user_read
    with _user_lock:  # read once, and never after a raise: the raise itself reads them first
        if not _user_read:
            _user_read = True
            try:
                import resource

                _user_limits = resource.getrlimit(resource.RLIMIT_NOFILE)
            except (ImportError, OSError, ValueError):
                _user_limits = None
        return _user_limits


def with_user_file_limit(argv: list[str]) -> list[str]:
    """`argv`, started so that it gets the user's soft open-file limit back if this process raised its own.

    Unwrapped before any raise. A raise by another thread just after the check lets one child inherit the raised
    limit, as every child did before this existed: harmless, and the price of not wrapping every local command.
    """
    limits = user_file_limits()
    if not argv or limits is None or not sys.executable:
        return argv
    try:
        import resource

        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limits[0]:
            return argv
    except (ImportError, OSError, ValueError):
        return argv
    return [sys.executable, "-I", "-S", "-c", _RESTORE_AND_EXEC, str(limits[0]), *argv]


def _can_raise(soft: int, hard: int) -> bool:
    """Whether `raise_open_file_limit` has a higher soft limit to go to."""
    import resource

    return soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or hard > soft)


def raise_open_file_limit() -> None:
    """Raise the soft open-file limit to the hard one (once per process; a failure changes nothing)."""
    global _raised
    if _raised:
        return
    _raised = True
    user_file_limits()  # what the children get back
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if _can_raise(soft, hard):
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, OSError, ValueError):  # not POSIX, or refused: keep the limit we have
        return


def open_file_limit() -> int | None:
    """The soft open-file limit now, or None where it cannot be read."""
    try:
        import resource

        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):
        return None


def open_file_count() -> int:
    """How many descriptors this process has open now (FILE_MARGIN where that cannot be read)."""
    for listing in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(listing))
        except OSError:
            continue
    return FILE_MARGIN


def fanout_within_file_limit(wanted: int, files_per_node: int) -> int:
    """`wanted` nodes at once, or as many fewer (at least 1) as the open-file limit leaves descriptors for.

    When `wanted` does not fit, the soft limit is raised to the hard one first (`raise_open_file_limit`): `ulimit -n
    256` sets both, so 64 local nodes at once (6 descriptors each) ran out, and the nodes past it were reported down.
    """
    in_use = open_file_count() + FILE_MARGIN

    def room(limit: int | None) -> int:
        return wanted if limit is None or limit < 0 else (limit - in_use) // max(1, files_per_node)

    if room(open_file_limit()) < wanted:
        raise_open_file_limit()
    return max(1, min(wanted, room(open_file_limit())))


def is_thread_exhaustion(exc: BaseException) -> bool:
    """True for CPython's `RuntimeError: can't start new thread` (the task limit, or memory for stacks)."""
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


def is_file_exhaustion(exc: BaseException) -> bool:
    """True for EMFILE / ENFILE: this process, or the whole machine, has no file descriptor left."""
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


def thread_limit_error(node: str) -> NodeError:
    """The `local` error of a node this machine could not start a thread for (`is_thread_exhaustion`)."""
    return NodeError(
        node,
        LOCAL,
        f"this machine cannot start another thread ({threading.active_count()} running): its task limit is"
        " reached, not a fault of the node",
        f"{TASK_LIMIT_HINT} or reach fewer nodes at once (--fanout); the controller keeps about {THREADS_PER_NODE}"
        " threads per SSH node.",
    )


def local_limit_error(node: str, exc: BaseException) -> NodeError | None:
    """The `local` error for `exc` when it is this machine's thread or file limit, else None."""
    if is_thread_exhaustion(exc):
        return thread_limit_error(node)
    if is_file_exhaustion(exc):
        limit = open_file_limit()
        shown = f" (ulimit -n is {limit})" if limit is not None else ""
        return NodeError(
            node,
            LOCAL,
            f"this machine has no file descriptor left for another connection{shown}: not a fault of the node",
            "raise the open-file limit (LimitNOFILE= in the controller's systemd unit, `ulimit -n`) or reach fewer"
            " nodes at once (--fanout).",
        )
    return None
