"""Limits of this machine, not of the node: open files and threads, which a large fleet runs out of.

Reaching N nodes at once takes a socket and a few threads per node (the controller keeps about 5 threads per SSH
node: the link, paramiko's transport, the agent's reader and stderr, the connection's watchdog). Out of either, the
failure surfaced as the node's fault ("does not speak SSH (can't start new thread)", `OSError: [Errno 24]`) with
the hint to check the node, and a controller that could not start a link's thread crashed. So the open-file soft
limit is raised to the hard limit before many connections are opened (as Go's runtime and most daemons do), and a
failure of either kind is one `local` error that names this machine's limit and how to raise it.
"""

from __future__ import annotations

import errno
import threading

from factoryctl.errors import NodeError

#: NodeError kind of a failure caused by a limit of this machine (exit 1: nothing is wrong with the node).
LOCAL = "local"
#: Threads the controller keeps per SSH node (see the module docstring), for the hint.
THREADS_PER_NODE = 5

_raised = False


def raise_open_file_limit() -> None:
    """Raise the soft open-file limit to the hard one (once per process; a failure changes nothing)."""
    global _raised
    if _raised:
        return
    _raised = True
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
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
