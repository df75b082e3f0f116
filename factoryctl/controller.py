"""The factoryctl daemon: the telemetry, jobs and power loops on timers, run in the foreground.

One controller per store, guaranteed by an `fcntl` lock beside it (the kernel drops the lock if the process dies).
SIGTERM/SIGINT stop it cleanly: links are closed, agents asked to exit and the last samples written. SIGHUP re-reads
factory.yaml: nodes are added, removed or reconnected without a restart, the scheduling passes and power loop take
the new file (controller_loops.py), and a broken file is refused with the reason logged while the controller keeps
its configuration. Every step it takes also exists as a one-shot command
(`telemetry collect --once`, `sched tick`, `power apply`).

The store file (and the lock) are checked every few seconds, because SQLite keeps writing the inode it opened: a
store deleted or swapped underneath makes the controller log why and exit 1, so systemd's `Restart=on-failure`
starts it on a fresh store. A swapped store also has the controller's `-wal` and `-shm` set aside first, else the
next opener laid them over the file moved in (`StoreLogFiles`). A damaged store ends it the same way at the first
write it refuses.
"""

from __future__ import annotations

import contextlib
import faulthandler
import json
import logging
import os
import re
import signal
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from factoryctl.config import FactoryConfig, load_config
from factoryctl.controller_log import OneLineFormatter as OneLineFormatter  # where tests and callers find it
from factoryctl.controller_log import configure_logging, flush_logging
from factoryctl.controller_loops import ControllerLoops
from factoryctl.controller_reload import reload_summary, reloaded_config
from factoryctl.errors import ExitCode, FactoryError
from factoryctl.model.timefmt import iso_utc
from factoryctl.signal_wake import Wake
from factoryctl.store.lock import ControllerLock
from factoryctl.store.lock_wait import stop_waiting_for_locks, wait_for_locks_again
from factoryctl.store.log_files import StoreLogFiles
from factoryctl.store.rows import STATS_EVERY_S, STATS_KEY, Event
from factoryctl.store.sqlite import Store, StoreDamaged, StoreError
from factoryctl.telemetry.collector import Collector
from factoryctl.telemetry.links import Connector
from factoryctl.telemetry.state_log import daemon_hint
from factoryctl.telemetry.wall_clock import timers_clock

if TYPE_CHECKING:
    from factoryctl.jobs.loop import JobsLoop
    from factoryctl.power.policy_loop import PowerLoop

log = logging.getLogger("factoryctl.controller")

MAINTAIN_EVERY_S = 60.0
#: How often the store file and the lock are checked against what the controller has open (one stat each).
FILE_CHECK_EVERY_S = 3.0
#: `controller status` calls a running controller unhealthy when it stored no sample for this many intervals
#: (and at least STALE_AFTER_MIN_S, so connecting to the nodes at start is not a failure).
STALE_AFTER_INTERVALS = 3
STALE_AFTER_MIN_S = 10.0
#: Before any event's time: the previous controller's start is looked for in the whole event log.
_EARLIEST_S = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()


class Controller:
    """The daemon's life: lock, store, collector, timers and signals."""

    def __init__(
        self,
        config: FactoryConfig,
        connector: Callable[[FactoryConfig], Connector] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        """`clock` stamps what is stored; the timers run on `monotonic` (a fake `clock` given alone serves both)."""
        self.config = config
        self._connector = connector
        self._clock = clock
        #: The timers' clock: a wall clock stepped back 10 minutes (NTP) stopped the lock and store checks for as long.
        self._monotonic = timers_clock(clock, monotonic)
        self._wake = Wake()  # given by the signal handlers: a `threading.Event` deadlocked them (signal_wake.py)
        self._stop_requested = False
        self._running = False  # between `run`'s start and end: when a stop cuts lock waits short
        self._stop_signal: int | None = None  # the signal that asked for the stop, said by the loop (never its handler)
        self._reload_requested = False
        self.started_at = clock()
        self.collector: Collector | None = None
        self.loops: ControllerLoops | None = None  # the scheduling passes and the power loop, once started
        self.store: Store | None = None
        self.lock: ControllerLock | None = None
        self._log_files: StoreLogFiles | None = None  # the store's -wal and -shm as it opened them
        #: Why the controller stopped on its own (its files were deleted, replaced or damaged), None while all is well.
        self.failure: str | None = None
        #: The `controller_stop` event's message for a failure that leaves the store usable (its lock replaced).
        self._failure_event: str | None = None
        self._damage: StoreDamaged | None = None  # met by the controller's own writes (events, figures, rollups)
        self._up_written: int | None = None  # the nodes up in the figures last written

    @property
    def jobs_loop(self) -> JobsLoop | None:
        """The scheduling passes, while factory.yaml wants them (`scheduler.interval` not 0s)."""
        return self.loops.jobs if self.loops is not None else None

    @property
    def power_loop(self) -> PowerLoop | None:
        """The power policy's runs, while factory.yaml sets one (controller_loops.py)."""
        return self.loops.power if self.loops is not None else None

    # ------------------------------------------------------------------ signals

    def request_stop(self, signum: int | None = None) -> None:
        """Stop at the next wake-up (SIGTERM, SIGINT: `signum`, which the loop logs); safe from a signal handler.

        A store another writer keeps locked then holds the stop 2 s at most, not 10 s per write left (the flush,
        the figures, the stop event: past systemd's 30 s TimeoutStopSec, whose SIGKILL lost them all).
        """
        self._stop_signal = self._stop_signal or signum
        self._stop_requested = True
        if self._running:  # not once it has ended (a late signal of a burst): the process's other writes wait as usual
            stop_waiting_for_locks()
        self._wake.set()

    @property
    def stop_requested(self) -> bool:
        """Whether a stop was asked for (SIGTERM, SIGINT, `request_stop`)."""
        return self._stop_requested

    def request_reload(self) -> None:
        """Re-read factory.yaml at the next wake-up (SIGHUP)."""
        self._reload_requested = True
        self._wake.set()

    def install_signal_handlers(self) -> dict[int, Any]:
        """SIGTERM and SIGINT stop, SIGHUP reloads (main thread only); returns the handlers they replace."""

        def on_stop(signum: int, frame: FrameType | None) -> None:
            # no logging here (the loop says it): a burst of SIGTERMs nests a handler in the one before, and each
            # log line's dozens of frames overflowed the stack (RecursionError, exit 1) where these few bytecodes do not
            self.request_stop(signum)

        def on_hup(signum: int, frame: FrameType | None) -> None:
            self.request_reload()

        handlers = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
        return {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}

    # ------------------------------------------------------------------ life

    def run(self) -> int:
        """Run until asked to stop or its store goes or is damaged; returns the exit status (0, or 1 after `failure`).

        Raises `FactoryError` when it cannot start (lock held, store unusable).
        """
        wait_for_locks_again()  # a controller started again in this process (tests) waits for a locked store as usual
        self._running = True
        self.lock = lock = ControllerLock(self.config.state_dir)
        lock.acquire()
        try:
            self.store = Store(self.config.store_path)
            self._log_files = StoreLogFiles(self.config.store_path)  # opened with it: the -wal and -shm are its own
            self.collector = Collector(self.config, self.store, connector=self._connector)
            count = len(self.config.nodes)
            nodes = f"{count} node{'' if count == 1 else 's'}"
            log.info("controller %d started: %s, store %s", os.getpid(), nodes, self.config.store_path)
            self._note_unclean_stop()
            self._event("controller_start", f"controller {os.getpid()} started with {nodes}")
            self._write_stats()  # before the links start: 2,000 of them take seconds, and status reads the figures
            self.collector.start()
            self._write_stats()
            self.loops = ControllerLoops(self._clock, self.collector.session)
            self.loops.sync(self.config)
            self._loop()
        finally:
            self._shutdown()
            lock.release()
            self._running = False
            wait_for_locks_again()  # its stop's cut-short waits end with it: a caller's own writes wait as usual
        return int(ExitCode.FAILURE) if self.failure else int(ExitCode.OK)

    def _note_unclean_stop(self) -> None:
        """Say a previous controller that ended without its `controller_stop` (kill -9, the OOM killer, a crash).

        Logged, and recorded as a `controller_stop` warning: else the next `controller_start` read as after a clean stop.
        """
        assert self.store is not None
        try:
            said = unclean_stop(self.store)
        except StoreError as exc:  # the writes that follow say what is wrong with the store
            log.debug("previous controller's stop not checked: %s", exc.message)
            return
        if said is not None:
            log.warning("%s", said)
            self._event("controller_stop", said, "warning")

    def _loop(self) -> None:
        next_maintain = self._monotonic() + MAINTAIN_EVERY_S
        next_stats = self._monotonic() + STATS_EVERY_S
        next_check = self._monotonic() + FILE_CHECK_EVERY_S
        while not self._stop_requested:
            self._wake.wait(1.0)
            if self._store_damaged() or self._code_changed():
                return
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
            now = self._monotonic()
            if now >= next_maintain:
                next_maintain = now + MAINTAIN_EVERY_S
                self._maintain(self._clock())
            if now >= next_stats:
                next_stats = now + STATS_EVERY_S
                self._retry_link_starts()
                self._write_stats()
            elif self._up_changed():  # `controller status` said `0 up` for 10 s after a start, a node's fall as long
                self._write_stats()
            if now >= next_check:
                next_check = now + FILE_CHECK_EVERY_S
                if self._files_failed():
                    return
        if self._stop_signal is not None:  # said here, once, however many came (see `on_stop`)
            log.info("received %s: stopping", signal.Signals(self._stop_signal).name)
        if not self._store_damaged():
            self._files_failed()  # a SIGTERM right after the store went still says so (and exits 1)

    def _retry_link_starts(self) -> None:
        """Links that found no thread to run on (the task limit) are started again, else their nodes stay down."""
        assert self.collector is not None
        retried = self.collector.retry_starts()
        if retried:
            log.debug("started again %d link%s that had no thread", retried, "" if retried == 1 else "s")

    def _store_damaged(self) -> bool:
        """Whether a write found the store damaged; then the controller says so in one error line and ends."""
        assert self.collector is not None
        damage = self.collector.writer.damaged or self._damage
        if damage is None:
            return False
        self.failure = (
            f"the store {damage.path} is damaged ({damage.detail}), so the controller stores nothing more and exits "
            f"(status 1); the samples it held are dropped. hint: {damage.hint}"
        )
        log.error("%s", self.failure)
        return True

    def _code_changed(self) -> bool:
        """Whether factoryctl's files changed under it (an upgrade, said by the collector): it ends, status 1."""
        assert self.collector is not None
        if self.collector.failure is None:
            return False
        self.failure = self.collector.failure
        self._failure_event = f"controller {os.getpid()} stopped: {self.failure}"  # the store is fine: `events` says it
        return True

    def _files_failed(self) -> bool:
        """Check the files once; a failure is logged as one error line and ends the controller."""
        self.failure = self.check_files()
        if (
            self.failure
            and self._log_files is not None
            and self.store is not None
            and self.store.replaced() == "replaced"
        ):
            self.failure += self._log_files.set_aside()  # a file moved over it: its -wal must not be laid over that
        if self.failure:
            log.error("%s", self.failure)
            if self.lock is not None and self.lock.replaced() and not (self.store and self.store.replaced()):
                self._failure_event = (  # the store is still the readers' one: `events` says why it stopped
                    f"controller {os.getpid()} stopped: its lock {self.lock.path} was deleted or replaced, so a "
                    "second controller could start on the store"
                )
        return self.failure is not None

    def check_files(self) -> str | None:
        """One sentence when the store or the lock on disk is no longer what this controller has open, else None."""
        path = self.config.store_path
        gone = self.store.replaced() if self.store is not None else None
        if gone == "replaced":
            return (
                f"the store {path} was replaced while the controller ran; it no longer reaches readers, so the "
                "controller exits (status 1) for its service manager to restart it on the file now there."
            )
        if gone:
            return (
                f"the store {path} was deleted while the controller ran, or moved; it no longer reaches readers, so "
                "the controller exits (status 1) for its service manager to restart it on a new store (history is "
                f"lost there, drains must be redone).{_moved_store_hint(path, gone)}"
            )
        if self.lock is not None and self.lock.replaced():
            return (
                f"the controller lock {self.lock.path} was deleted or replaced, so a second controller could start "
                f"on {path}; the controller exits (status 1) for its service manager to restart it."
            )
        return None

    def _shutdown(self) -> None:
        if self.loops is not None:
            self.loops.stop()  # before the store closes: a run under way may still write it
        if self.collector is not None:
            self.collector.stop()
            # a deleted, replaced or damaged store (the last writes may be the first to find it): no figures, no event
            if not self.failure and not self._store_damaged():
                self._write_stats()
                self._event("controller_stop", f"controller {os.getpid()} stopped")
                self._store_damaged()
            elif self._failure_event is not None and not self._store_damaged():
                # its lock replaced: the event, not the figures, which a controller that took the new lock now owns
                self._event("controller_stop", self._failure_event, "error")
                self._store_damaged()
            log.info("controller stopped: %s", json.dumps(self.collector.stats()))
        if self.store is not None:
            self.store.close()

    def reload(self) -> bool:
        """Re-read factory.yaml; a broken file keeps the running configuration. Returns whether it changed.

        Also kept when the new file loads but cannot be meant (from a pipe, without nodes, moving the store):
        `reloaded_config` says which it refuses, and why.
        """
        path = self.config.path
        try:
            new = reloaded_config(self.config)
        except FactoryError as exc:
            why = f"{exc.message} ({exc.hint})" if exc.hint else exc.message
            log.error("reload refused, keeping the previous configuration: %s", why)
            self._event("config_rejected", f"reload refused, kept the previous configuration: {exc.message}", "error")
            return False
        assert self.collector is not None
        change = self.collector.apply(new)
        old, self.config = self.config, new
        summary = reload_summary(old, new, change)
        if self.loops is not None:
            self.loops.sync(new)  # without waiting for a run under way (a slow node): the loop's own thread ends it
        log.info("reloaded %s: %s", path, summary)
        self._event("config_reloaded", f"reloaded {path}: {summary}")
        return True

    # ------------------------------------------------------------------ timers

    def _maintain(self, now: float) -> None:
        assert self.collector is not None
        try:
            rolled, raw, rollups = self.collector.maintain(now)
        except StoreDamaged as exc:
            self._damage = exc
            return
        except StoreError as exc:
            log.error("rollup and retention skipped: %s%s", exc.message, daemon_hint(exc))
            return
        log.debug("rollup %d rows; pruned %d raw rows and %d rollups", rolled, raw, rollups)

    def stats(self) -> dict[str, Any]:
        """What `controller status` and the benchmarks read."""
        assert self.collector is not None
        return {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "written_at": self._clock(),
            "interval_s": self.config.interval_s,
            **self.collector.stats(),
            "power_loop": self.power_loop.stats() if self.power_loop is not None else None,
        }

    def _up_changed(self) -> bool:
        """Whether the count of nodes up differs from the one last written for `controller status`."""
        return self.collector is not None and self.collector.up_count() != self._up_written

    def _write_stats(self) -> None:
        if self.store is None or self.collector is None:
            return
        try:
            stats = self.stats()
            self.store.set_meta(STATS_KEY, json.dumps(stats))
            self._up_written = stats["up"]  # once written: a refused write is tried again within a second
        except StoreDamaged as exc:
            self._damage = exc
        except StoreError as exc:
            log.debug("stats not written: %s", exc.message)

    def _event(self, kind: str, message: str, severity: str = "info") -> None:
        if self.store is None:
            return
        try:
            self.store.add_events([Event(self._clock(), kind, message, severity=severity)])
        except StoreDamaged as exc:
            self._damage = exc  # said once, by the loop, before it ends
        except StoreError as exc:
            log.error("event not recorded: %s (%s)%s", message, exc.message, daemon_hint(exc))


def unclean_stop(store: Store) -> str | None:
    """The sentence for a store whose newest controller event is a `controller_start` with no stop after it, or None.

    Its pid comes from that event; the time it last wrote from the store's newest sample stored after it started.
    """
    found = store.events(_EARLIEST_S, None, limit=1, kind="controller_start")
    if not found:
        return None
    start = found[-1]
    pid = re.match(r"controller (\d+) started", start.message)
    if _stopped_after(store, start, pid.group(1) if pid else None):
        return None
    who = f"the previous controller (pid {pid.group(1)})" if pid else "the previous controller"
    if pid and _runs_as_controller(int(pid.group(1))):
        return (
            f"{who} still runs, without its lock (the lock file was deleted or replaced): it stops on its own within "
            f"{FILE_CHECK_EVERY_S:g} s and records why, unless it is stopped (SIGSTOP) or hung"
        )
    stored = store.samples_stored_at()
    if stored is not None and stored >= start.time:
        last = f"it last stored samples at {iso_utc(stored)}"
    else:
        last = f"it stored no sample after it started at {iso_utc(start.time)}"
    return (
        f"{who} ended without stopping (killed, crashed, or its stop could not be written: its log says which); {last}"
    )


def _runs_as_controller(pid: int) -> bool:
    """Whether `pid` is another process of this machine running `controller run` (its /proc command line says so).

    A controller whose lock file was deleted runs on until its next check, and the one that took the new lock said
    it had been killed or crashed. Not this process (a container's controller is pid 1 at every start), nor a pid
    reused by another program; without /proc (not Linux) it is taken for ended, as before.
    """
    if pid == os.getpid():
        return False
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"controller" in words and b"run" in words


def _stopped_after(store: Store, start: Event, pid: str | None) -> bool:
    """Whether the controller of `start` (pid `pid`) recorded its `controller_stop` after it.

    By its pid: a controller whose lock was replaced records its stop once it notices, up to `FILE_CHECK_EVERY_S`
    after another controller took the new lock and started; that stop is not the newer controller's.
    """
    stops = store.events(start.time, None, limit=100, kind="controller_stop")
    return any(pid is None or stop.message.startswith(f"controller {pid} stopped") for stop in stops)


def _moved_store_hint(path: Path, gone: str) -> str:
    """For a store gone from `path` whose `-wal` is still there (a `mv` of the file alone), how to keep its rows.

    The newest rows are in the `-wal`, which SQLite finds by the store's own name: the moved file without it lacks
    them (it reads as an empty store), and SQLite deletes that `-wal` when a new store is started at `path`.
    """
    if gone != "deleted" or not path.with_name(f"{path.name}-wal").exists():
        return ""
    return (
        " hint: a store is moved together with its -wal and -shm files, with the controller stopped; its newest rows "
        f"are in {path}-wal, still here: move it and {path.name}-shm beside the moved file as NEW-wal and NEW-shm "
        "(NEW: its new path) before the controller starts again, which deletes them."
    )


def run_controller(
    config_path: Path | None, log_level: str = "info", hangup_held: Callable[[], bool] | None = None
) -> int:
    """`factoryctl controller run`: load the config, take the lock, serve until SIGTERM; returns the exit status.

    `faulthandler` is enabled so a fatal signal (SIGBUS from the store's memory-mapped `-shm` file, say) writes which
    one it was, and where the thread it hit was, on stderr (the log) before the process dies. That thread only: a large
    fleet runs thousands.

    `hangup_held` says, once the controller's handlers are in place, whether a SIGHUP came before them (the CLI holds
    it from its start): the controller then reloads as soon as it runs, as `systemctl reload` just after `start` asks.

    The handlers it replaced are put back as it returns, unless a stop was asked for: its own then stay, asking an
    ended controller again, until the caller's end with them (the CLI's block, `signals.sigterm_interrupts`). Put
    back, the CLI's raised `Terminated` for a second SIGTERM of a burst, and a clean stop exited 143.
    """
    configure_logging(log_level)
    with contextlib.suppress(AttributeError, ValueError, OSError):  # a stderr with no file behind it (in-process tests)
        faulthandler.enable(all_threads=False)
    controller = Controller(load_config(config_path))
    previous = controller.install_signal_handlers()
    if hangup_held is not None and hangup_held():
        log.info("received SIGHUP while starting: reloading once started")
        controller.request_reload()
    try:
        return controller.run()
    finally:  # a refused start (lock held) must not leave Ctrl-C disabled in the calling process
        if not controller.stop_requested:  # else its handlers stay: a further stop changes nothing (see the doc)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        flush_logging()
