"""Limits of this machine, not of the node: open files and threads, which a large fleet runs out of.

Reaching N nodes at once takes a socket and a few threads per node (the controller keeps about 4 threads per SSH
node: the link, paramiko's transport, the agent's reader and stderr; one liveness watch serves them all). Out of either, the
failure surfaced as the node's fault ("does not speak SSH (can't start new thread)", `OSError: [Errno 24]`) with
the hint to check the node, and a controller that could not start a link's thread crashed. So the open-file soft
limit is raised to the hard limit before many connections are opened (as Go's runtime and most daemons do), and a
failure of either kind is one `local` error that names this machine's limit and how to raise it.

The raise is this process's own: a program it starts on this machine (a `local` node's command or agent) gets the
user's soft limit back (`with_user_file_limit`), as it would from the user's shell; one that uses select() breaks
past descriptor 1024, and a child should see the limit its user set. It is started through `/bin/sh`, which sets the
limit and execs it in the same process (same pid, same process group). The alternatives are wrong: subprocess's
`preexec_fn` runs Python in the forked child and can deadlock it while other threads hold locks, `posix_spawn` has
no limit attribute, and `prlimit` on the child's pid comes too late (Popen returns after the exec: the program is
already running, and may have forked or opened its descriptors, with the raised limit).
"""

from __future__ import annotations

import errno
import os
import shutil
import threading

from factoryctl.errors import NodeError

#: NodeError kind of a failure caused by a limit of this machine (exit 1: nothing is wrong with the node).
LOCAL = "local"
#: Threads the controller keeps per SSH node (see the module docstring), for the hint.
THREADS_PER_NODE = 5

#: The shell a local child is started through to get the user's limit back (`with_user_file_limit`).
SHELL = "/bin/sh"

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
    """`argv` started through `SHELL` with the user's soft open-file limit, when this process may have raised its own.

    Whether it did is not asked: a raise by another thread between the question and the fork would slip through, so
    every child is wrapped wherever a raise is possible. A program that cannot be found is started as it is, so it
    fails as before (`No such file or directory`), not with the shell's words.
    """
    limits = user_file_limits()
    if not argv or limits is None or not _can_raise(*limits) or not os.access(SHELL, os.X_OK):
        return argv
    found = shutil.which(argv[0])
    if found is None:
        return argv
    program = found if argv[0].startswith("-") else argv[0]  # `exec -x` would be read as an option
    script = f'ulimit -S -n {limits[0]} 2>/dev/null; exec "$@"'  # refused, it runs with the limit it inherits
    return [SHELL, "-c", script, argv[0], program, *argv[1:]]


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


def is_thread_exhaustion(exc: BaseException) -> bool:
    """True for CPython's `RuntimeError: can't start new thread` (the task limit, or memory for stacks)."""
    return isinstance(exc, RuntimeError) and "can't start new thread" in str(exc)


def is_file_exhaustion(exc: BaseException) -> bool:
    """True for EMFILE / ENFILE: this process, or the whole machine, has no file descriptor left."""
    return isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)


def local_limit_error(node: str, exc: BaseException) -> NodeError | None:
    """The `local` error for `exc` when it is this machine's thread or file limit, else None."""
    if is_thread_exhaustion(exc):
        return NodeError(
            node,
            LOCAL,
            f"this machine cannot start another thread ({threading.active_count()} running): its task limit is"
            " reached, not a fault of the node",
            "raise the limit (TasksMax= in the controller's systemd unit, `ulimit -u`) or reach fewer nodes at once"
            f" (--fanout); the controller keeps about {THREADS_PER_NODE} threads per SSH node.",
        )
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
