"""A job rank's wrapper: starts the command detached, waits for it and writes its exit status (`exit`).

    python3 <agent.pyz> rank-run <rank directory>

Run by the agent's `launch` (factoryctl.agent.ranks) on a directory holding `spec.json` (argv, env, cwd, gpus,
the rank's mark and, on a simulated node, `sim`). It forks: the first process waits until the second says the
command started (or why it could not) and prints that as one JSON line for the agent, then exits; the second, in a
session of its own, with no descriptor of the agent's (so the SSH channel closes when the agent ends), starts the
command in its own session and process group (stdin /dev/null, stdout and stderr to `output.log`), writes
`record.json` with a blank `exit`, waits for it and writes `exit` (128+N for a signal N: over the blank when the
disk is full by then; a command whose record cannot be written is killed, as no agent could find it). So a rank
outlives the agent, its SSH session and the connection; a `kill` signals the command's group and the processes
carrying its mark (factoryctl.agent.rank_procs), never the wrapper, which then still writes how it ended. On a
simulated node the command's pid is registered on its GPUs, so they show its load while it runs
(docs/simulated-driver.md), and its energy is banked every few seconds and when it ends. Python 3.9 and the
standard library, plus factoryctl.sim.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

from factoryctl.agent.rank_procs import start_ticks

if TYPE_CHECKING:
    from factoryctl.sim.state import SimNode

#: How often the wrapper of a simulated rank banks its GPUs' energy (a wrapper killed takes at most this much).
HEARTBEAT_S = 5.0
#: The size of `exit`, reserved blank when the rank starts and overwritten with the status right-aligned.
EXIT_SIZE = 16


def main(argv: List[str]) -> int:
    """Start the rank of the directory `argv[0]`; the first process's exit status (the command's goes to `exit`)."""
    if len(argv) != 1:
        print("usage: rank-run RANK_DIRECTORY", file=sys.stderr)
        return 2
    directory = Path(argv[0])
    spec_path = directory / "spec.json"
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        spec_path.unlink()  # its environment may hold secrets: not left on disk
    except (OSError, ValueError) as exc:
        print(f"rank-run: cannot read {spec_path}: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    read_end, write_end = os.pipe()
    if os.fork():
        os.close(write_end)
        with os.fdopen(read_end, "rb") as answer:
            sys.stdout.write(answer.read().decode("utf-8", "replace"))
        return 0
    os.close(read_end)
    os._exit(_rank(directory, spec, write_end))


def _rank(directory: Path, spec: Dict[str, Any], answer_fd: int) -> int:
    """The second process: detach, start the command, answer on `answer_fd`, wait, write `exit`."""
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    try:
        log = os.open(directory / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        _answer(answer_fd, _disk_error(directory, "its output", exc))
        return 0
    try:
        proc = subprocess.Popen(
            spec["argv"],
            cwd=spec["cwd"],
            env=spec["env"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except (OSError, ValueError, TypeError, KeyError) as exc:  # the agent says it, never a silent wrapper
        _answer(answer_fd, {"error": _start_error(spec, exc)})
        return 0
    started_at = time.time()
    node, watcher = _register(spec, proc.pid, log)
    recorded = _write_record(directory, spec, proc, started_at)
    _answer(answer_fd, recorded)
    if "error" not in recorded:
        code = _wait(proc, node)
        _write_exit(directory / "exit", 128 - code if code < 0 else code)
    if watcher is not None:
        watcher.join(timeout=2.0)  # banks the rank's energy up to its end (factoryctl.sim.state)
    return 0


def _write_record(
    directory: Path, spec: Dict[str, Any], proc: "subprocess.Popen[bytes]", started_at: float
) -> Dict[str, Any]:
    """Reserve `exit` and write `record.json`; the answer for the agent (the pid, or an `error`).

    A command whose record cannot be written could be neither found nor killed by any agent: it is killed (its
    process group) here, and the agent told why. `exit` gets its block now, so a full disk cannot keep its status.
    """
    record = {
        "pid": proc.pid,
        "pgid": proc.pid,
        "argv": spec["argv"],
        "gpus": spec["gpus"],
        "started_at": started_at,
        "start_ticks": start_ticks(proc.pid, zombie=True),  # a command that ended at once is not yet reaped
        "wrapper_pid": os.getpid(),
        "wrapper_start_ticks": start_ticks(os.getpid()),
        "mark": spec.get("mark"),  # in the command's environment too: what it starts is found by it (rank_procs)
    }
    try:
        with open(directory / "exit", "wb") as f:  # blank: not yet an exit status (factoryctl.agent.ranks)
            f.write(b" " * (EXIT_SIZE - 1) + b"\n")
        _write_atomic(directory / "record.json", json.dumps(record))
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()  # gone before the agent hears of it
        for name in ("exit", "record.json.tmp"):
            with contextlib.suppress(OSError):
                os.unlink(directory / name)
        return _disk_error(directory, "its record", exc)
    return {"pid": proc.pid, "started_at": started_at}


def _write_exit(path: Path, code: int) -> None:
    """Write the exit status: replaced at once, or, when the disk is full, over the blank `exit` reserved for it."""
    text = f"{code}\n"
    try:
        _write_atomic(path, text)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path.with_name(path.name + ".tmp"))
        with contextlib.suppress(OSError):  # nothing more to try: the rank then reads as ended without a status
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, text.rjust(EXIT_SIZE).encode(), 0)  # the same size: no new block is needed
            finally:
                os.close(fd)


def _disk_error(directory: Path, what: str, exc: OSError) -> Dict[str, Any]:
    """The answer for a rank whose files cannot be written: a node's fault (`agent`), not the command's."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return {"error": f"no space left on {directory} for {what}", "kind": "agent"}
    return {"error": f"{what} cannot be written in {directory}: {exc.strerror or exc}", "kind": "agent"}


def _start_error(spec: Dict[str, Any], exc: Exception) -> str:
    """Why the command could not start, in one sentence naming it."""
    program = spec["argv"][0]
    if not isinstance(exc, OSError):
        return f"{program} cannot be run: {exc!r}"
    if isinstance(exc, FileNotFoundError) and exc.filename == spec["cwd"]:
        return f"its directory {spec['cwd']} does not exist"
    if isinstance(exc, FileNotFoundError):
        where = "" if "/" in program else " on the PATH"
        return f"no program {program} was found{where}"
    if isinstance(exc, PermissionError):
        return f"{program} cannot be run: permission denied"
    return f"{program} cannot be run: {exc.strerror or exc}"


def _register(spec: Dict[str, Any], pid: int, log: int) -> Tuple[Optional["SimNode"], Optional[threading.Thread]]:
    """On a simulated node: `pid`'s load on its GPUs; the node and its watcher thread (None, None otherwise)."""
    sim = spec.get("sim")
    if not sim or not spec["gpus"]:
        return None, None
    try:
        from factoryctl.sim.state import SimNode

        node = SimNode(sim["state_dir"], sim["node"], factory=sim["factory"])
        name = os.path.basename(spec["argv"][0])
        return node, node.register_process(pid, spec["gpus"], load=1.0, used_memory_mib=20000.0, name=name)
    except (OSError, ValueError) as exc:  # the rank runs on; its GPUs just do not show it
        os.write(log, f"factoryctl rank-run: the simulated GPUs do not show this rank: {exc}\n".encode())
        return None, None


def _wait(proc: "subprocess.Popen[bytes]", node: Optional["SimNode"]) -> int:
    """The command's exit status (negative for a signal), banking a simulated rank's energy while it runs."""
    if node is None:
        return proc.wait()
    while True:
        try:
            return proc.wait(timeout=HEARTBEAT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                node.heartbeat(proc.pid)


def _answer(fd: int, answer: Dict[str, Any]) -> None:
    """The one line the first process passes on to the agent."""
    try:
        os.write(fd, (json.dumps(answer) + "\n").encode())
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    """`path` replaced by `text` at once: a reader sees no half-written record or status."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
