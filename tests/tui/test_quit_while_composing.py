"""A quit that lands while a screen is being built (SIGTERM as the dashboard starts) exits cleanly, never a crash.

From `App.exit()` on, Textual mounts no more widgets, yet a screen being composed still gets its Mount event and the
app still handles the messages queued before its exit: `factoryctl dash` killed as it started exited 1 with
`No nodes match 'JobsPanel' on MainScreen(id='main')` (or `'NodeTable'`) instead of 143. These tests quit at that
moment on purpose, deterministically (one asyncio loop runs its callbacks in order), through the signal's own path.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest
from factory_data import FrozenServices
from pilot_helpers import first_snapshot
from textual import events
from textual.message import Message
from textual.screen import Screen

from factoryctl.live.services import FactorySnapshot
from factoryctl.tui.app import DashboardApp, make_app
from factoryctl.tui.screens.confirm import ConfirmScreen
from factoryctl.tui.screens.help import HelpScreen
from factoryctl.tui.screens.main import MainScreen
from factoryctl.tui.screens.node import NodeScreen
from factoryctl.tui.screens.power_cap import PowerCapScreen

Quit = Callable[[DashboardApp], None]


def _sigterm(app: DashboardApp) -> None:
    """The real signal path: the handler schedules the exit on the loop, so it lands while the screen composes."""
    app.on_exit_signal(signal.SIGTERM, None)


def _exit_at_once(app: DashboardApp) -> None:
    """An exit before the screen's first step (`q`, Ctrl-C handled first): it composes with the app exiting."""
    app.exit(return_code=143)


QUITS = pytest.mark.parametrize("quit_now", [_sigterm, _exit_at_once], ids=["sigterm", "exit"])


@QUITS
async def test_a_quit_as_the_factory_screen_composes_exits_with_its_status(
    services: FrozenServices, quit_now: Quit
) -> None:
    """`factoryctl dash` sent SIGTERM right after it started: the factory screen is still being built."""
    app = make_app(services)
    fired = False

    def quit_as_main_screen_composes(message: Message) -> None:
        nonlocal fired
        pushed = any(isinstance(screen, MainScreen) for screen in app.screen_stack)
        if not fired and pushed and isinstance(message, events.Compose):
            fired = True
            quit_now(app)

    async with app.run_test(message_hook=quit_as_main_screen_composes) as pilot:
        await pilot.pause()
    assert fired
    assert app.crashed is None
    assert app.return_code == 143


SCREENS: dict[str, Callable[[FactorySnapshot], Screen[object]]] = {
    "node": lambda snapshot: NodeScreen(snapshot.nodes[0].node),
    "confirm": lambda snapshot: ConfirmScreen("Drain it?", "drain it", "Drain", ask_reason="why"),
    "power cap": lambda snapshot: PowerCapScreen(snapshot.nodes[0]),
    "help": lambda snapshot: HelpScreen([], read_only=False),
}


@QUITS
@pytest.mark.parametrize("screen", sorted(SCREENS))
async def test_a_quit_as_a_screen_opens_exits_with_its_status(
    services: FrozenServices, screen: str, quit_now: Quit
) -> None:
    """Enter, `d`, `p` or `?` then Ctrl-C or a signal at once: the screen opening has none of its widgets."""
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        snapshot = services.snapshot()
        app.push_screen(SCREENS[screen](snapshot))
        app.post_message(app.SnapshotTaken(snapshot))  # a snapshot on its way as the quit comes
        quit_now(app)
        await pilot.pause()
    assert app.crashed is None
    assert app.return_code == 143


async def test_a_snapshot_after_the_quit_is_not_published(services: FrozenServices) -> None:
    """Nothing is drawn once the app exits: a screen being built then may have none of its widgets to draw in."""
    app = make_app(services)
    async with app.run_test() as pilot:
        await first_snapshot(pilot)
        published = app.snapshots_taken
        app.exit()
        app.post_message(app.SnapshotTaken(services.snapshot()))
        await pilot.pause()
    assert app.snapshots_taken == published
    assert app.crashed is None
