"""Ctrl-C for the commands of one SSH connection: the ones running, and the ones still starting when it came.

A command is among the running ones (`interrupt` reaches it) only once its `exec` request has gone out: a signal
sent on a channel before that request is refused by sshd ("no child"), so the command would start and never hear it.
Which side of that point a command is on is decided under one lock with the interrupt's mark: a command not started
yet when the connection was interrupted is refused (`not started`, as exec says of a node still connecting), and one
whose `exec` request was on its way is interrupted by its own thread as soon as it started. exec's Ctrl-C during its
connection ramp-up so left commands running on the nodes for good: they had started just after the interrupt, which
had found nothing to signal, and exec's commands are not ended on its way out (a command that ignores Ctrl-C is
reported as still running, by choice: docs/ssh.md). While an interrupt's answer is awaited (a root login's kill over
another channel, a command still starting) the node is held in `STOPS_UNDERWAY`, so exec's wait after a second
Ctrl-C does not say "still running" of commands the first one is ending.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError
from factoryctl.transport.fanout import NOT_STARTED_MESSAGE
from factoryctl.transport.ssh_channel import CommandStderr, send_signal
from factoryctl.transport.stops_underway import END_SLACK_S, STOPS_UNDERWAY

if TYPE_CHECKING:
    import paramiko

    from factoryctl.transport.stdin_stream import Feed

#: How long an interrupt's delivery may take, its channel's open and a login shell's start included (the command's
#: process group report awaited first, if it had not come yet).
DELIVERY_TIMEOUT_S = 2.0
#: How often a delivery looks again for the process group of a command that has not reported it yet.
_GROUP_POLL_S = 0.05

#: Sends `signals` to a command (its channel, its process group or None) by a deadline; False if the node did not
#: answer (SshConnection._signal).
Signaller = Callable[["paramiko.Channel", "int | None", Sequence[str], float], bool]


class CommandInterrupts:
    """The commands of one connection, and whether it was interrupted (see the module doc)."""

    def __init__(
        self, node: str, reach: Callable[[], bool], signal: Signaller, round_trip: Callable[[float], bool]
    ) -> None:
        """`reach`: whether sshd delivers `signal` requests here; `round_trip(timeout)`: one answered request."""
        self.node = node
        self._reach, self._signal, self._round_trip = reach, signal, round_trip
        self._lock = threading.Lock()
        self._running: dict[paramiko.Channel, CommandStderr] = {}
        self._starts = 0  # commands between `starting` and their `start` (or their failure)
        self._thread = threading.local()  # `starting`: whether this thread's command is counted in `_starts`
        self.interrupted = False

    @contextlib.contextmanager
    def starting(self, feed: Feed | None = None) -> Iterator[None]:
        """A command runs in the block, counted as starting until `start`: refused at once if interrupted already.

        `feed`, its input, is closed if it is refused here.
        """
        with self._lock:
            if self.interrupted and feed is not None:
                feed.close()
            self._refuse_if_interrupted()
            self._starts += 1
            self._thread.starting = True
        try:
            yield
        finally:
            with self._lock:
                self._started()

    def start(self, chan: paramiko.Channel, err: CommandStderr, send: Callable[[], None]) -> None:
        """`send` the command's `exec` request, unless interrupted first (refused); one interrupted meanwhile hears it."""
        with self._lock:
            self._refuse_if_interrupted()
        try:
            send()
        except BaseException:
            with self._lock:
                self._started()
            raise
        with self._lock:
            self._started()
            self._running[chan] = err
            late = self.interrupted
        if late:
            self._interrupt_one(chan, err, self._reach())

    def _started(self) -> None:
        """This thread's command no longer starting (under the lock), counted once."""
        if getattr(self._thread, "starting", False):
            self._starts -= 1
            self._thread.starting = False

    def ended(self, chan: paramiko.Channel) -> None:
        """The command of `chan` is over: no interrupt for it any more."""
        with self._lock:
            self._running.pop(chan, None)

    def interrupt(self) -> None:
        """Mark the connection interrupted and interrupt every command running on it; never waits for the node."""
        reach = self._reach()
        with self._lock:
            self.interrupted = True
            running = list(self._running.items())
            if self._starts:  # refused or interrupted once started: exec waits for which (STOPS_UNDERWAY)
                STOPS_UNDERWAY.hold(self.node)
        for chan, err in running:
            self._interrupt_one(chan, err, reach)

    def _refuse_if_interrupted(self) -> None:
        if self.interrupted:
            raise NodeError(self.node, "interrupted", NOT_STARTED_MESSAGE)

    def _interrupt_one(self, chan: paramiko.Channel, err: CommandStderr, reach: bool) -> None:
        """SIGINT, then SIGHUP: as `signal` requests, or over another channel (`_deliver`, on a thread of its own).

        An OpenSSH server (>= 7.9) delivers the requests to the command's whole process group, as a terminal does on
        Ctrl-C and then on hang-up; where it delivers none (root logins) the group is signalled over another channel.
        """
        if reach or err.group is None:
            send_signal(chan, "INT")
            send_signal(chan, "HUP")
        STOPS_UNDERWAY.hold(self.node)
        name = f"interrupt-{self.node}"
        threading.Thread(target=self._deliver, args=(chan, err, reach), daemon=True, name=name).start()

    def _deliver(self, chan: paramiko.Channel, err: CommandStderr, reach: bool) -> None:
        """Make sure the interrupt arrived, then hold the node until its result comes unless its command goes on.

        Over another channel once the command reported its process group (awaited, a command interrupted as it
        starts may not have yet), or a round trip behind the `signal` requests; bounded by DELIVERY_TIMEOUT_S.
        """
        deadline = time.monotonic() + DELIVERY_TIMEOUT_S
        with contextlib.suppress(Exception):  # the connection may be gone: then the command's run ends too
            if reach:
                self._round_trip(max(deadline - time.monotonic(), 0.01))
            else:
                while err.group is None and not chan.closed and time.monotonic() < deadline:
                    time.sleep(_GROUP_POLL_S)
                if err.group is not None and not chan.closed:
                    self._signal(chan, err.group, ("INT", "HUP"), deadline)
        if not chan.status_event.wait(END_SLACK_S):  # it goes on: exec need not wait for it
            STOPS_UNDERWAY.release(self.node)
