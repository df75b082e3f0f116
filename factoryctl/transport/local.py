"""The `local` transport: this machine's own node, with the agent as a subprocess speaking the same protocol.

Used by the demo, by workstations that watch their own GPUs, and by tests of everything above the wire.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, cast

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.agent_lines import MAX_LINE_BYTES, MAX_STDERR_LINE, AgentLines, PipeRecv
from factoryctl.transport.base import CappedOutput, CommandCut, CommandResult, OutputSink, command_result, cut_short
from factoryctl.transport.held_open import read_for_grace
from factoryctl.transport.host_limits import agent_limit_error, start_limit_error, with_user_file_limit
from factoryctl.transport.launch import agent_argv
from factoryctl.transport.node_leftovers import END_WITHIN_S, NODE_LEFTOVERS
from factoryctl.transport.polling import readable, writable
from factoryctl.transport.session import AgentSession
from factoryctl.transport.stdin_stream import CHUNK, Feed, Stdin, as_feed
from factoryctl.transport.stops_underway import END_SLACK_S, STOPS_UNDERWAY

#: How often the stdin pump and the output readers look again at a stop request.
_POLL_S = 0.1
#: Local agents started at once, per CPU this process may run on. Each is a Python process on this machine: 64
#: started at once on 2 cores took more than 5 s each to say hello, and healthy nodes were reported timed out (8 at
#: once: only the hung ones). A start's timeout counts from its turn, so it measures the node, not our own crowd.
_STARTS_PER_CPU = 4


def _cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or taskset's share), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


#: Held by each local agent from its start until its hello (or its failure): see _STARTS_PER_CPU.
_STARTING = threading.BoundedSemaphore(_STARTS_PER_CPU * _cpus())

#: At most this many chunks are read from an output pipe once its reader was stopped (a pipe holds one, usually).
_DRAIN_CHUNKS = 64


class LocalTransport:
    """Runs commands and the agent on this machine."""

    def __init__(self, node: NodeSpec, factory: str, state_dir: Path) -> None:
        self.node = node
        self.factory = factory
        self.state_dir = state_dir
        self._agents: list[tuple[subprocess.Popen[bytes], _StderrTail]] = []
        self._leftovers: dict[subprocess.Popen[bytes], int] = {}  # each agent's number in NODE_LEFTOVERS
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen[bytes]] = set()
        self._interrupted = False

    def run(
        self, argv: list[str], timeout: float, stdin: Stdin = None, on_output: OutputSink | None = None
    ) -> CommandResult:
        """Run argv directly (no shell) and wait at most `timeout` seconds; `stdin` is its input (else none).

        The command never inherits this process's stdin (a terminal, or a pipe other nodes' input comes from). Input
        is written from a thread while the output is read, and the command's end is never held up by input still
        to come. `on_output` sees each chunk as it is read; past the deadline, CommandCut carries what was read.
        Once it exited, output that something it started holds open is read for a moment only (held_open.py).
        """
        feed = as_feed(stdin)
        deadline = time.monotonic() + timeout
        proc = _start(self.node.name, argv, feed)
        if isinstance(proc, CommandResult):
            return proc
        self._track(proc)
        assert proc.stdout is not None
        assert proc.stderr is not None
        out = _Collect(proc.stdout, CappedOutput(number=1, sink=on_output))
        err = _Collect(proc.stderr, CappedOutput(number=2, sink=on_output))
        err.kept.group = proc.pid  # it leads its own process group (`_start`)
        pump: threading.Thread | None = None
        if feed is not None:
            pump = threading.Thread(target=_pump, args=(feed, proc), daemon=True, name=f"stdin-{self.node.name}")
            pump.start()
        try:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
                exited = True
            except subprocess.TimeoutExpired:
                exited = False
            if not exited:
                raise self._timed_out(proc, out, err, timeout)
            # it exited: what it started may hold the output open (held_open.py); Ctrl-C ends that wait at once
            if not read_for_grace(lambda end: out.wait(end) and err.wait(end), deadline, lambda: self._interrupted):
                _held_open(out, err)
            return command_result(_shell_status(proc.returncode), out.kept, err.kept)
        finally:
            if feed is not None:
                feed.close()  # ends the pump: it never blocks in a write
            for worker in (out, err):  # a stream left held open is not drained now: "its later output is not shown"
                worker.stop(drain=not worker.kept.held_open)
            if pump is not None:
                pump.join(5)
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            with self._lock:
                self._running.discard(proc)

    def _track(self, proc: subprocess.Popen[bytes]) -> None:
        """Count `proc` as running (`interrupt` signals it), and signal it now if Ctrl-C came while it started."""
        with self._lock:
            self._running.add(proc)
            late = self._interrupted  # Ctrl-C came while it started: `interrupt` did not see it, so it is ours
        if late:
            self._signal_interrupted([proc])

    def _timed_out(self, proc: subprocess.Popen[bytes], out: _Collect, err: _Collect, timeout: float) -> CommandCut:
        """Kill the command's whole group and say it timed out, with what it had printed by then."""
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        for worker in (out, err):
            worker.stop()
        cause = NodeError(  # the words of the SSH transport
            self.node.name,
            "timeout",
            f"command did not finish within {timeout:g} s and was killed",
            "raise --timeout, or look at what hangs on the node.",
        )
        return cut_short(cause, out.kept, err.kept)

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT, then SIGHUP, to the commands running now (what a terminal sends, then its hang-up)."""
        with self._lock:
            self._interrupted = True  # a command starting right now is signalled by `run` itself
            running = list(self._running)
        if running:
            self._signal_interrupted(running)

    def _signal_interrupted(self, running: list[subprocess.Popen[bytes]]) -> None:
        """SIGINT, then SIGHUP, to each command's group; exec waits for their end even after a second Ctrl-C."""
        for proc in running:
            for sig in (signal.SIGINT, signal.SIGHUP):
                _signal_group(proc, sig)
        STOPS_UNDERWAY.hold(
            self.node.name
        )  # until it goes on past END_SLACK_S, or its result comes (stops_underway.py)
        threading.Thread(target=self._ends_soon, args=(running,), daemon=True, name="interrupt-local").start()

    def _ends_soon(self, interrupted: list[subprocess.Popen[bytes]]) -> None:
        """Release the node's hold (see `interrupt`) if one of its interrupted commands goes on for END_SLACK_S."""
        deadline = time.monotonic() + END_SLACK_S
        for proc in interrupted:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                STOPS_UNDERWAY.release(self.node.name)
                return

    def start_agent(self, timeout: float) -> AgentSession:
        """Start the agent zipapp with this interpreter and wait (at most `timeout`) for its hello.

        Only a few agents start at once on this machine's CPUs (`_STARTING`); the timeout begins with this one's turn.
        """
        with _STARTING:
            return self._start_agent(timeout)

    @property
    def python(self) -> str:
        """The interpreter the agent runs on: this factoryctl's own for the default `python3`, else the node's."""
        return sys.executable if self.node.python == "python3" else self.node.python

    def agent_command(self) -> list[str]:
        """The agent's command line, as `start_agent` runs it, for a person (`nodes check` tells to run it by hand).

        A zipapp in the held temporary directory (transport/bundle.py) is named by that directory's name here.
        """
        from factoryctl.transport.bundle import agent_zipapp, shown_path

        return self._agent_argv(shown_path(agent_zipapp()))

    def _agent_argv(self, zipapp: Path) -> list[str]:
        return agent_argv(self.node, self.factory, self.python, zipapp, str(self.state_dir / "sim"))

    def _start_agent(self, timeout: float) -> AgentSession:
        from factoryctl.transport.bundle import agent_zipapp, runnable

        zipapp, inherited = runnable(agent_zipapp())
        python, argv = self.python, self._agent_argv(zipapp)
        try:  # in its own process group, as commands run (`_start`): a wrapper's children are ended with it
            proc = subprocess.Popen(
                with_user_file_limit(argv),  # not the open-file limit raised for the fleet: its ranks inherit it
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                pass_fds=inherited,  # a zipapp in the held temporary directory reached only through it
            )
        except OSError as exc:
            local = start_limit_error(self.node.name, exc)  # out of files or processes here: not the node's fault
            raise local or NodeError(self.node.name, "agent", f"cannot start {python}: {exc.strerror}.", None) from exc
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stderr is not None
        tail = _StderrTail(proc.stderr)
        # until it is reaped, a stopped factoryctl kills it on its way out (node_leftovers.py): it leads its own
        # session, so nothing else would, and one waiting for the node's limits lock set a limit after the exit
        leftover = self._leftovers[proc] = NODE_LEFTOVERS.add(lambda: _kill_now(proc))
        self._agents.append((proc, tail))
        session = AgentSession(
            self.node.name,
            proc.stdin,
            cast("IO[bytes]", _lines_of(proc.stdout, MAX_LINE_BYTES)),  # its stdout is closed by `_reap`
            on_close=lambda: _end_agent(proc, tail, session, leftover),
            stderr_tail=tail.text,
            cut_off=lambda: agent_limit_error(self.node.name, tail.text()),  # it died of this machine's limit
        )
        try:
            session.wait_hello(timeout)
        except NodeError:
            _reap(proc, tail, grace=0.0, leftover=leftover)  # it said nothing in time: no reason to wait any longer
            raise
        return session

    def close(self) -> None:
        """Stop every agent this transport started, and close every pipe to them."""
        for proc, tail in self._agents:
            _reap(proc, tail, leftover=self._leftovers.get(proc))
        self._agents.clear()
        self._leftovers.clear()


#: How long a failed session waits for the rest of its agent's stderr (the agent has exited, or its pipe is cut).
LAST_WORDS_WAIT_S = 0.5


def _lines_of(pipe: IO[bytes], limit: int, cut: bool = False) -> AgentLines:
    """An agent's output pipe read as lines under the same limits as over SSH (transport/agent_lines.py).

    Iterating the pipe itself read a line without end into memory until it ran out (3 GB in 15 s). Read with `read1`,
    which returns what the pipe holds without waiting for more (Popen's pipes are buffered readers), waiting on an
    empty pipe without a 64 KiB read under way (`PipeRecv`: an idle agent's two readers held 128 KiB).
    """
    return AgentLines(PipeRecv(cast("io.BufferedReader", pipe)), limit, cut)


class _StderrTail:
    """Drains a child's stderr on a thread (so it never blocks) and keeps its last lines for error messages.

    A longer line than MAX_STDERR_LINE is cut to it, as over SSH. The thread closes the stream at its end (the child
    and everything it started closed it).
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=5)
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True, name="agent-stderr")
        self._thread.start()

    def _drain(self, stream: IO[bytes]) -> None:
        with stream, contextlib.suppress(OSError, ValueError):
            for raw in _lines_of(stream, MAX_STDERR_LINE, cut=True):
                self._lines.append(raw.decode("utf-8", "replace"))

    def join(self, timeout: float) -> None:
        """Wait (at most `timeout`) for the end of the stream."""
        self._thread.join(timeout)

    def text(self) -> str:
        """The last lines, once the stream has ended or LAST_WORDS_WAIT_S passed.

        Asked when the agent's session fails, typically because its stdout ended: the last words on stderr may still
        be on their way through the pipe (a loaded machine showed "the agent exited" without them).
        """
        self._thread.join(LAST_WORDS_WAIT_S)
        return "".join(self._lines)


def _shell_status(returncode: int) -> int:
    """A command's exit status as a shell reports it: 128 + N for one killed by signal N (Popen says -N).

    137 for SIGKILL (the OOM killer), as `sh -c` says: never 0 and never negative, so exec's exit status and JSON
    `exit_code` say the command failed. (Over SSH it is 255, as ssh says: paramiko drops sshd's signal name.)
    """
    return 128 - returncode if returncode < 0 else returncode


def _cannot_run_status(exc: OSError) -> int:
    """What a shell exits with for a command it cannot start: 127 not found, else 126 (found, but not runnable).

    bash's rule (its `shell_execve`), so a local node answers as an SSH node whose login shell is bash: 126 for a
    file without execute permission, a directory, a path through a file (ENOTDIR) or a binary for another machine.
    """
    return 127 if exc.errno == errno.ENOENT else 126


def _start(node: str, argv: list[str], feed: Feed | None) -> subprocess.Popen[bytes] | CommandResult:
    """Start argv in its own process group (as sshd gives a command: signalled as a whole); 126/127 if it cannot run.

    Out of files or processes here is the `local` error of `node`, not a command that cannot run. It gets the user's
    open-file limit, not the one this process raised for the fleet (`with_user_file_limit`).
    """
    try:
        return subprocess.Popen(
            with_user_file_limit(argv),
            stdin=subprocess.DEVNULL if feed is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
    except OSError as exc:
        if feed is not None:
            feed.close()
        local = start_limit_error(node, exc)
        if local is not None:  # this machine is out of files or processes: not "command not found" (126)
            raise local from exc
        message = f"{argv[0]}: {_cannot_run_reason(argv[0], exc)}\n".encode("utf-8", "surrogateescape")
        return CommandResult(_cannot_run_status(exc), b"", message)


def _cannot_run_reason(command: str, exc: OSError) -> str:
    """Why `command` could not start, in bash's words: `command not found` for a name not on PATH, else strerror.

    A name without `/` is looked up on PATH; one found there that still fails with ENOENT (a missing `#!`
    interpreter) keeps the system's reason, as does any path.
    """
    if exc.errno == errno.ENOENT and "/" not in command and shutil.which(command) is None:
        return "command not found"
    return exc.strerror or str(exc)


class _Collect:
    """Reads one output stream to its end on a thread (poll + os.read, so `stop` ends it whatever holds the pipe).

    What it read is kept in `kept` (bounded, like SSH commands' output), and passed on to its sink as it comes.
    """

    def __init__(self, stream: IO[bytes], kept: CappedOutput) -> None:
        self.kept = kept
        self._fd = stream.fileno()
        self._stop = threading.Event()
        #: Whether the end of the stream was read (everyone holding it closed it).
        self.ended = False
        self._thread = threading.Thread(target=self._read, args=(self._fd,), daemon=True)
        self._thread.start()

    def _read(self, fd: int) -> None:
        with contextlib.suppress(OSError, ValueError):
            while not self._stop.is_set():
                ready = readable([fd], _POLL_S)
                if ready:
                    chunk = os.read(fd, CHUNK)
                    if not chunk:
                        self.ended = True
                        return
                    self.kept.add(chunk)

    def wait(self, deadline: float) -> bool:
        """True once the stream ended (everyone holding it closed it), False if `deadline` (+0.1 s) came first."""
        self._thread.join(max(0.1, deadline - time.monotonic()))  # a moment to read what an exit just flushed
        return not self._thread.is_alive()

    def stop(self, drain: bool = True) -> None:
        """Stop reading (within a poll) and wait for the thread, then keep what is already in the pipe (`drain`).

        The thread may stop before it read what the command wrote just before its end (a timeout under load): that
        is read now, without waiting for more (at most _DRAIN_CHUNKS chunks: a writer outside the command's group
        could go on for ever). The stream may be closed after this.
        """
        self._stop.set()
        self._thread.join()
        if not drain:
            return
        with contextlib.suppress(OSError, ValueError):
            for _ in range(_DRAIN_CHUNKS):
                if self.ended or not readable([self._fd], 0):
                    return
                chunk = os.read(self._fd, CHUNK)
                if not chunk:
                    self.ended = True
                    return
                self.kept.add(chunk)


def _held_open(out: _Collect, err: _Collect) -> None:
    """The command exited, but a process it started holds its output open: stop reading, leave that one running.

    A stream that turns out to have ended meanwhile (a `--lines` reader that was slow to take the last lines) is not
    held open; one that did not is (`CappedOutput.held_open`: the command's result says so).
    """
    for worker in (out, err):
        worker.stop(drain=False)  # what it writes on is not read: a writer that never stops kept exec on
        worker.kept.held_open = not worker.ended


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Signal the command's whole process group (it leads its own session); it may be gone already."""
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, sig)


def _pump(feed: Feed, proc: subprocess.Popen[bytes]) -> None:
    """Write the feed to the command's stdin, then close it; a slow reader slows the feed.

    Writes never block (the pipe is non-blocking, poll waits for room a moment at a time), so the pump ends as soon
    as the feed is closed or the command exited, even while a background child holds the pipe without reading.
    """
    pipe = proc.stdin
    assert pipe is not None
    fd = pipe.fileno()
    try:
        os.set_blocking(fd, False)
        while proc.poll() is None and not feed.closed:
            data = feed.peek(CHUNK)
            if data:
                if writable(fd, _POLL_S):
                    with contextlib.suppress(BlockingIOError):
                        feed.advance(os.write(fd, data))
            elif feed.ended:
                break
            else:
                feed.wait(_POLL_S)
    except (OSError, ValueError):  # the command closed its stdin or exited: it takes no more, which is fine
        pass
    finally:
        feed.close()
        with contextlib.suppress(OSError, ValueError):
            pipe.close()


#: How long a closing agent that answered `shutdown` (or was sent its stdin's EOF alone) gets to exit before it is killed.
AGENT_EXIT_GRACE_S = 2.0


def _end_agent(proc: subprocess.Popen[bytes], tail: _StderrTail, session: AgentSession, leftover: int) -> None:
    """End a session's agent: one that answered `shutdown` is given time to exit, any other is killed at once.

    An agent that failed or did not answer `shutdown` has exited, or never will on its own (stopped with SIGSTOP, or
    hung): waiting for it only delayed the link's teardown and so the node's new session, as the SSH path
    (`ssh_node._end_agent`) never did.
    """
    _reap(proc, tail, grace=AGENT_EXIT_GRACE_S if session.shutdown_answered else 0.0, leftover=leftover)


def _reap(
    proc: subprocess.Popen[bytes], tail: _StderrTail, grace: float = AGENT_EXIT_GRACE_S, leftover: int | None = None
) -> None:
    """End an agent and close every pipe to it (it could run on, and the files waited for the garbage collector).

    EOF on its stdin asks it to exit; if it has not within `grace` seconds its whole process group is killed: a
    `python:` wrapper script's children too, which would otherwise hold its stdout open (and this close, which
    waits for the session's reader of that pipe) until they end. Its stderr is closed by the tail draining it, at
    its end, which is waited for briefly. Once reaped it is no longer among what a stopped factoryctl kills on its way
    out (`leftover`). Calling it again does nothing.
    """
    _close_pipe(proc.stdin)
    if proc.poll() is None:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait(timeout=5)
    if leftover is not None:
        NODE_LEFTOVERS.discard(leftover)
    _close_pipe(proc.stdout)
    tail.join(2.0)


def _kill_now(proc: subprocess.Popen[bytes]) -> None:
    """Kill an agent a stopped factoryctl leaves (its whole group, at once) and reap it: nothing runs on after the exit.

    Killed, not asked to exit: one waiting for the node's limits lock reads no request until it has changed them.
    """
    if proc.poll() is None:  # a reaped agent's pid may be another process's by now
        _signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=END_WITHIN_S)


def _close_pipe(pipe: IO[bytes] | None) -> None:
    """Close one end of a pipe to a child; what it could not take any more is not an error."""
    if pipe is not None:
        with contextlib.suppress(OSError, ValueError):
            pipe.close()
