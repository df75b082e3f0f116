"""Limits of this machine, not of the node: open files, threads and processes, which a large fleet runs out of.

Reaching N nodes at once takes a socket and a few threads per node (the controller keeps about 4 threads per SSH
node: the link, paramiko's transport, the agent's reader and stderr; one liveness watch serves them all). Out of either, the
failure surfaced as the node's fault ("does not speak SSH (can't start new thread)", `OSError: [Errno 24]`) with
the hint to check the node, and a controller that could not start a link's thread crashed. So the open-file soft
limit is raised to the hard limit before many connections are opened (as Go's runtime and most daemons do), a
fan-out works on no more nodes at once than the limit then has room for (`fanout_within_file_limit`: `ulimit -n`
sets the hard limit too), and a failure of either kind is one `local` error that names this machine's limit and
how to raise it. A process start refused with EAGAIN (a pids cgroup, systemd's TasksMax=) is the same task limit as a
thread that could not start (it was `cannot start python3: Resource temporarily unavailable` on a node, and exec's
`exit code 126` for `sleep`), and so is a local agent that died saying so; under a finite `ulimit -v` the address
space is named instead when no task limit is near (task_memory.py). The message carries the limit, not a count of
running threads that differs from node to node, so a fleet's failures fold into one line.

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
from factoryctl.transport.task_memory import (
    address_space_limit,
    cap_malloc_arenas,
    soft_limit,
    task_limit_near,
    task_limit_shown,
)
from factoryctl.transport.task_memory import mib as _mib

#: NodeError kind of a failure caused by a limit of this machine (exit 1: nothing is wrong with the node).
LOCAL = "local"
#: What to raise when this machine is out of threads (the start of a hint).
TASK_LIMIT_HINT = "raise the limit (TasksMax= in the controller's systemd unit, `ulimit -u`)"
#: What to raise when this machine's address space is full (the start of a hint).
MEMORY_LIMIT_HINT = "raise or remove the address-space limit (LimitAS= in the controller's systemd unit, `ulimit -v`)"
#: An ImportError's words when the library's file could not be mapped: no address space left.
_NO_MEMORY_WORDS = ("failed to map segment", "cannot allocate memory", "Cannot allocate memory")
#: An agent's last words on stderr that say it could not start a thread, or ran out of memory. (A bare EAGAIN is not
#: among them: a non-blocking read or write says it too, and that would be the agent's own bug.)
_AGENT_THREAD_WORDS = ("can't start new thread",)
_AGENT_MEMORY_WORDS = ("MemoryError", "failed to map segment", "Cannot allocate memory")
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
    cap_malloc_arenas()  # many connections: many threads, each with its own malloc arena (task_memory.py)
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
    return soft_limit("RLIMIT_NOFILE", unlimited_as_none=False)


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
    cap_malloc_arenas()
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


def is_process_exhaustion(exc: BaseException) -> bool:
    """True for a process start (fork) refused with EAGAIN: the task limit (pids.max, TasksMax=, `ulimit -u`).

    Only for an error of starting a process: EAGAIN elsewhere is a non-blocking read or write with nothing to do.
    """
    return isinstance(exc, OSError) and exc.errno == errno.EAGAIN


def thread_limit_error(node: str) -> NodeError:
    """The `local` error of a node this machine could not start a thread for (`is_thread_exhaustion`).

    CPython says the same `can't start new thread` whether the task limit is reached or the address-space limit
    (`ulimit -v`, systemd's LimitAS=) has no room for the thread's stack and malloc arena: the address-space limit is
    named when it is finite and no task limit is close (`memory_limit_error`).
    """
    if address_space_limit() is not None and not task_limit_near():
        return memory_limit_error(node, "start another thread")
    return task_limit_error(node)


def task_limit_error(node: str) -> NodeError:
    """The `local` error of a node this machine could not start a thread or a process for: its task limit.

    One message for both, without a count that changes from node to node: the fleet's failures fold into one line.
    """
    return NodeError(
        node,
        LOCAL,
        f"this machine cannot start another thread or process: its task limit is reached{task_limit_shown()}, not a"
        " fault of the node",
        f"{TASK_LIMIT_HINT} or reach fewer nodes at once (--fanout); the controller keeps about {THREADS_PER_NODE}"
        " threads per SSH node.",
    )


def memory_limit_error(node: str, what: str) -> NodeError:
    """The `local` error of a node this machine had no memory for (`what` it could not do) under `ulimit -v`."""
    limit = address_space_limit()
    shown = f" (ulimit -v is {_mib(limit)})" if limit is not None else ""
    return NodeError(
        node,
        LOCAL,
        f"this machine cannot {what}: its address-space limit{shown} is reached, not a fault of the node",
        f"{MEMORY_LIMIT_HINT} or reach fewer nodes at once (--fanout).",
    )


def local_limit_error(node: str, exc: BaseException) -> NodeError | None:
    """The `local` error for `exc` when it is this machine's thread, file or address-space limit, else None."""
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
    if address_space_limit() is not None and is_memory_exhaustion(exc):
        return memory_limit_error(node, "load or allocate what the node needs")
    return None


def start_limit_error(node: str, exc: BaseException) -> NodeError | None:
    """The `local` error for a process start on this machine that failed with `exc`, when a limit of it is why."""
    if is_process_exhaustion(exc):
        return task_limit_error(node)
    return local_limit_error(node, exc)


def is_memory_exhaustion(exc: BaseException) -> bool:
    """True for MemoryError, ENOMEM, and a library that could not be mapped (`failed to map segment`)."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    return isinstance(exc, ImportError) and any(words in str(exc) for words in _NO_MEMORY_WORDS)


def agent_limit_error(node: str, last_words: str) -> NodeError | None:
    """The `local` error of a local node whose agent (a process on this machine) died of this machine's limit.

    Its last words on stderr say so (`RuntimeError: can't start new thread`; under `ulimit -v` a MemoryError, or a
    library `failed to map segment`): those are this machine's limits, not the agent's fault.
    """
    if any(words in last_words for words in _AGENT_MEMORY_WORDS) and address_space_limit() is not None:
        return memory_limit_error(node, "run the node's agent")
    if any(words in last_words for words in _AGENT_THREAD_WORDS):
        return thread_limit_error(node)
    return None


#: How a `local` error's message ends (its words above): a reader quoting it drops this part (`local_cause`).
_NOT_THE_NODE = ("not a fault of the node",)


def local_cause(message: str) -> str:
    """A stored `local` error's message without its `not a fault of the node` end: which limit, in its words."""
    for end in _NOT_THE_NODE:
        message = message.split(f": {end}")[0].split(f", {end}")[0]
    return message.rstrip(". ")


def local_hint(message: str) -> str:
    """The hint of a stored `local` error, from its message (the store keeps the kind and message, not the hint)."""
    if "file descriptor" in message:
        return "raise the open-file limit (LimitNOFILE= in the controller's systemd unit, `ulimit -n`)."
    if "address-space" in message:
        return f"{MEMORY_LIMIT_HINT}."
    return f"{TASK_LIMIT_HINT}; the controller keeps about {THREADS_PER_NODE} threads per SSH node."
