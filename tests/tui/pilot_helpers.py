"""Helpers of the dashboard's Pilot tests: wait for the app without sleeping, and read a renderable as text."""

from __future__ import annotations

import time
from collections.abc import Callable


async def wait_until(pilot, condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds (checked after each message-queue drain), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.02)


async def first_snapshot(pilot) -> None:
    """Wait until the app has published its first snapshot and the screens drew it."""
    await wait_until(pilot, lambda: pilot.app.snapshots_taken >= 1, what="the first snapshot")
    await pilot.pause()


def plain(renderable: object, width: int = 80) -> str:
    """What a Rich renderable reads as, without styles."""
    import io

    from rich.console import Console

    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def when_armed(pilot) -> None:
    """Wait until the dialog on top counts a key or click (it ignores them in its first moment: a burst of keys)."""
    from factoryctl.tui.screens.guarded_dialog import GuardedDialog

    def armed() -> bool:
        screen = pilot.app.screen
        return isinstance(screen, GuardedDialog) and screen.armed

    await wait_until(pilot, armed, what="the dialog to arm")


async def confirm_by_keys(pilot) -> None:
    """Confirm the dialog on top as a person does: once armed, Enter (the first step), then Enter again."""
    await when_armed(pilot)
    dialog = pilot.app.screen
    await pilot.press("enter")
    assert pilot.app.screen is dialog, "the first Enter closed the dialog"
    assert dialog.ready, "the first Enter did not make the dialog ready"
    button = dialog.query_one("#confirm")
    assert dialog.focused is button, "the first Enter did not focus the confirm button"
    # a first Enter on the button itself shows its press for 0.2 s, when Textual ignores another
    await wait_until(pilot, lambda: not button.has_class("-active"), what="the button's press shown")
    await pilot.press("enter")
