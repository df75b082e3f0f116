"""The dashboard app and the one factory function that builds it from its services.

`DashboardApp` only schedules: a timer asks a thread worker for a snapshot (never two at once, so a slow source
makes updates late, never the UI frozen) and publishes it in the `snapshot` reactive that every screen watches.
The services do all IO; `run_dashboard` is what `factoryctl dash` and `factoryctl demo` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual import constants, events, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.reactive import var
from textual.screen import ModalScreen

from factoryctl.errors import ExitCode
from factoryctl.live.services import DashboardServices, FactorySnapshot
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.guarded_dialog import GuardedDialog
from factoryctl.tui.screens.help import HelpScreen
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.widgets.filter_bar import FilterBar
from factoryctl.tui.widgets.node_table import NodeTable

if TYPE_CHECKING:
    from rich.console import RenderableType

    from factoryctl.config import FactoryConfig

#: Never ask for snapshots faster than this, whatever the configured interval.
MIN_REFRESH_S = 0.25

#: The signals that quit the dashboard as `q` does, terminal restored, with exit status 128 + the signal's number:
#: SIGTERM (`kill`, `timeout`, systemd: 143), SIGINT sent as a signal (130) and SIGHUP (a closed terminal window,
#: `kill -HUP`: 129, whose default would kill the process in the alternate screen). SIGHUP is POSIX only.
EXIT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP") if hasattr(signal, name))


class DashboardApp(App[None]):
    """The live dashboard of one factory."""

    CSS_PATH = "dashboard.tcss"
    TITLE = "factoryctl dash"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", tooltip="quit (on the node screen: back; in this list: close it)"),
        # Textual's own Ctrl-C only says "press ctrl+q": ours quits from anywhere, even a dialog, as in watch or top
        Binding(
            "ctrl+c", "interrupt", "Quit", key_display="Ctrl-C", show=False, priority=True, tooltip="quit (exit 130)"
        ),
        # raw mode turns the terminal's own Ctrl-Z off: without this key typed text after it went to the dashboard
        Binding(
            "ctrl+z",
            "suspend_process",
            "Suspend",
            key_display="Ctrl-Z",
            show=False,
            priority=True,
            tooltip="suspend to the shell, terminal restored (`fg` brings it back)",
        ),
        Binding("question_mark", "help", "Keys", key_display="?", tooltip="this list of keys"),
    ]

    snapshot: var[FactorySnapshot | None] = var(None, always_update=True)

    class SnapshotTaken(Message):
        """A thread worker brought a new snapshot."""

        def __init__(self, snapshot: FactorySnapshot) -> None:
            super().__init__()
            self.snapshot = snapshot

    class SnapshotFailed(Message):
        """The services could not produce a snapshot this time."""

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    def __init__(
        self,
        services: DashboardServices,
        read_only: bool = False,
        target: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.services = services
        #: The wall clock the header judges the data's age by (tests pin it; a stalled source must show as stale).
        self.clock = clock
        #: The exit status of a SIGTERM/SIGINT/SIGHUP received (143/130/129); `run_dashboard` catches them from
        #: before `run()`.
        self.signal_status: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # set while mounted: where a signal schedules the exit
        self.read_only = read_only
        self.target = target
        self.snapshots_taken = 0
        #: The first unhandled exception; `run_dashboard` raises it again once the terminal is restored.
        self.crashed: Exception | None = None
        #: Whether `exit()` was called (`q`, Ctrl-C, a signal). Textual mounts no widget from then on, yet a screen
        #: being composed still gets its Mount event: see `factoryctl.tui.screens.lifecycle`.
        self.exiting = False
        self._fetching = False
        self._last_failure: str | None = None
        self._last_price_error: str | None = None
        self.title = f"factoryctl · {services.factory_name}"
        self.sub_title = "read-only" if read_only else ""

    def exit(self, result: None = None, return_code: int = 0, message: RenderableType | None = None) -> None:
        """Quit, by any path; from here on no snapshot is published (a screen being built may lack its widgets)."""
        self.exiting = True
        super().exit(result, return_code, message)

    def _handle_exception(self, error: Exception) -> None:
        """An unhandled exception: quit, keeping it for the CLI's boundary (one sentence; a traceback with --debug).

        Textual's own report is a traceback with every frame's local variables (a config, a key's path), whatever
        --debug says; factoryctl never prints local variables (docs/security.md).
        """
        if self.crashed is None:
            self.crashed = error
        super()._handle_exception(error)

    def _fatal_error(self) -> None:
        """Close after `_handle_exception`, without Textual's traceback (see there)."""
        self._close_messages_no_wait()

    async def on_event(self, event: events.Event) -> None:
        """A key made before the dialog on top opened is a stray key of the burst that opened it: the dialog's.

        Textual checks a key's bindings once it has bubbled back up from the focused widget, against the screen on
        top by then: the Enter of `ls -ld /tmp` + Enter (typed or pasted by mistake) would act in the drain dialog that
        its `d` opened. Such a key is typed into the dialog's input instead, never run as a key.
        """
        if isinstance(event, events.Key) and event.is_forwarded:
            stack = self.screen_stack
            top = stack[-1] if stack else None
            if isinstance(top, GuardedDialog) and event.time < top.opened_at:
                top.type_stray_key(event)
                return
        await super().on_event(event)

    def on_mount(self) -> None:
        """Open the factory screen and start refreshing."""
        self._loop = asyncio.get_running_loop()
        self._use_terminal_palette()
        if self.signal_status is not None:  # the signal came before the app was running: quit now
            self.exit(return_code=self.signal_status)
            return
        self.push_screen(MainScreen(self.services.factory_name, self.target or ""))
        self.set_interval(max(MIN_REFRESH_S, self.services.interval_s), self.request_snapshot, name="refresh")
        self.request_snapshot()

    def _use_terminal_palette(self) -> None:
        """On a 16-colour terminal, send ANSI colours as they are, drawn by the terminal's own palette.

        Textual would map them to its theme's RGB, which the terminal rounds back to the nearest of 16 (a warning's
        orange to bright red, an alarm's red to magenta, both to one yellow on the light theme). The theme becomes
        Textual's ANSI one of the same darkness, so every background is the terminal's own (never its black beside
        it). A headless app (`run_test`, the snapshot tests) has no terminal to detect: it keeps the theme's colours
        unless `TEXTUAL_COLOR_SYSTEM` names a colour system.
        """
        if self.is_headless and constants.COLOR_SYSTEM == "auto":
            return
        if self.console.color_system in ("standard", "windows"):
            self.theme = "ansi-dark" if self.current_theme.dark else "ansi-light"
            self.ansi_color = True

    def request_snapshot(self) -> None:
        """Ask for a snapshot unless one is already on its way (requests merge instead of piling up)."""
        if self._fetching:
            return
        self._fetching = True
        self._take_snapshot()

    @work(thread=True, group="snapshot", exit_on_error=False)
    def _take_snapshot(self) -> None:
        try:
            snapshot = self.services.snapshot()
        except Exception as exc:  # the UI must outlive any failure of its source
            self.post_message(self.SnapshotFailed(getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.SnapshotTaken(snapshot))

    def on_dashboard_app_snapshot_taken(self, message: SnapshotTaken) -> None:
        """Publish the snapshot to every screen (not once quitting: nothing more is drawn)."""
        self._fetching = False
        if self.exiting:
            return
        self._last_failure = None
        self.snapshots_taken += 1
        self.snapshot = message.snapshot
        error = message.snapshot.price_error
        if error is not None and error != self._last_price_error:  # the header only says `n/a (error)`
            hint = "fix power.prices (a file is read again when it changes; a plugin is asked again every 5 min)."
            self.notify(
                f"{error.rstrip('.')}: {hint}", title="no grid price", severity="warning", timeout=10, markup=False
            )
        self._last_price_error = error

    def on_dashboard_app_snapshot_failed(self, message: SnapshotFailed) -> None:
        """Say so once per distinct failure; keep showing the last good snapshot."""
        self._fetching = False
        if message.reason != self._last_failure and not self.exiting:
            self._last_failure = message.reason
            self.notify(message.reason, title="no new data", severity="error", timeout=8, markup=False)

    def on_unmount(self) -> None:
        """From here on a signal only records its status: the app is already on its way out."""
        self._loop = None

    def on_exit_signal(self, signum: int, frame: object) -> None:
        """SIGTERM/SIGINT/SIGHUP handler (main thread, any time): quit as `q` does, with exit status 128 + signum.

        Before mount (or after unmount) it only records the status, which `on_mount` (or `run_dashboard`) acts on.
        """
        if self.signal_status is None:
            self.signal_status = 128 + signum
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._exit_for_signal)

    def _exit_for_signal(self) -> None:
        with contextlib.suppress(Exception):  # never a traceback on a terminal being restored
            self.exit(return_code=self.signal_status or 0)

    def action_interrupt(self) -> None:
        """Ctrl-C: quit from any screen or dialog, with the status of an interrupted command (130)."""
        self.exit(return_code=int(ExitCode.INTERRUPTED))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Inside a dialog `q` and `?` belong to the dialog."""
        return not (action in ("quit", "help") and isinstance(self.screen, ModalScreen))

    def action_help(self) -> None:
        """`?`: every key."""
        sections: list[tuple[str, list[BindingType]]] = [
            ("Factory", [*MainScreen.BINDINGS, *NodeTable.BINDINGS]),
            ("Node screen", list(NodeScreen.BINDINGS)),
            (
                "Filter bar",
                [Binding("enter", "keep", tooltip="keep the filter and go back to the table"), *FilterBar.BINDINGS],
            ),
        ]
        if not self.read_only:  # the power-cap dialog's Esc and q are the same as these
            sections.append(("Dialogs", list(ConfirmScreen.BINDINGS)))
        sections.append(("Everywhere", list(self.BINDINGS)))
        self.push_screen(HelpScreen(sections, self.read_only))


def make_app(
    services: DashboardServices,
    read_only: bool = False,
    target: str | None = None,
    clock: Callable[[], float] = time.time,
) -> DashboardApp:
    """Build the dashboard on `services`; `target` pre-fills the node filter; `read_only` hides every action.

    `clock` (unix seconds) is what the header measures the newest sample's age against: the wall clock, or a fixed
    time for pictures that must not change between runs.
    """
    return DashboardApp(services, read_only=read_only, target=target, clock=clock)


def run_dashboard(config: FactoryConfig, read_only: bool = False, target: str | None = None) -> int:
    """Run the dashboard in this terminal on `config`'s nodes (those of `target`), then release every session.

    With a live controller the dashboard reads its store; otherwise it runs its own collector (one agent session
    per node) for as long as it is open. Returns the exit status: 0 after `q`, 130 after Ctrl-C or SIGINT, 143 after
    SIGTERM, 129 after SIGHUP; an unexpected error inside the app is raised here, after the terminal is restored.
    The signal handlers (`EXIT_SIGNALS`) are in place before the terminal changes and stay until the sessions are released,
    so a signal at any moment restores the terminal rather than killing the process in the alternate screen. The first
    one also arms a `ShutdownWatchdog`: an app that cannot close (its terminal gone, Textual's writer dead) has its
    sessions released and the process ended with the signal's status a few seconds later.
    """
    from factoryctl.live.services import open_services
    from factoryctl.tui.shutdown_watch import ShutdownWatchdog

    services = open_services(config, target)
    app = make_app(services, read_only=read_only)
    watchdog = ShutdownWatchdog(services.close)

    def on_exit_signal(signum: int, frame: object) -> None:
        app.on_exit_signal(signum, frame)
        watchdog.arm(app.signal_status or 128 + signum)  # a closed terminal can leave the app unable to close

    main = threading.current_thread() is threading.main_thread()  # only the main thread may set signal handlers
    previous = {sig: signal.signal(sig, on_exit_signal) for sig in EXIT_SIGNALS if main}
    try:
        try:
            app.run()
        finally:
            watchdog.finished()
            watchdog.release_once()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if app.crashed is not None:
        raise app.crashed
    return app.return_code or app.signal_status or 0
