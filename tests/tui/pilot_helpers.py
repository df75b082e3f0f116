"""Helpers of the dashboard's Pilot tests: wait for the app without sleeping, read a renderable as text, and keep
what the app notified (its toasts vanish after their timeout; Textual's own list of them is private)."""

from __future__ import annotations

import html
import inspect
import re
import time
from collections.abc import Callable
from pathlib import Path

from textual.notifications import Notification, SeverityLevel

from factoryctl.live.services import DashboardServices
from factoryctl.tui.app import DashboardApp


class RecordingApp(DashboardApp):
    """The dashboard, keeping in `notified` every notification it raised, in order (built as `make_app` builds it).

    Every toast goes through `App.notify` (a screen's or a widget's `notify` calls the app's), so none is missed.
    """

    CSS_PATH = Path(inspect.getfile(DashboardApp)).with_name("dashboard.tcss")  # Textual reads it next to the class

    def __init__(
        self,
        services: DashboardServices,
        read_only: bool = False,
        target: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(services, read_only=read_only, target=target, clock=clock)
        self.notified: list[Notification] = []

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        self.notified.append(Notification(message, title, severity, markup=markup))
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)


def last_notice(app: RecordingApp) -> str:
    """The message of the app's latest notification ("" before the first)."""
    return app.notified[-1].message if app.notified else ""


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


#: One run of text in Rich's SVG export: its x (in pixels), its length in pixels, its line, and the text.
SVG_TEXT = re.compile(r'<text [^>]*?x="([\d.]+)"[^>]*?textLength="([\d.]+)"[^>]*?-line-(\d+)\)"[^>]*>(.*?)</text>')


def screen_text(app: DashboardApp) -> str:
    """What the terminal shows now, as plain lines: Textual's screenshot (`export_screenshot`, an SVG) read back.

    Each run of text sits at its column (x over a cell's width); styles and backgrounds are left out.
    """
    lines: dict[int, list[str]] = {}
    for x, length, line, escaped in SVG_TEXT.findall(app.export_screenshot()):
        text = html.unescape(escaped).replace("\xa0", " ")
        cell = float(length) / len(text)
        row = lines.setdefault(int(line), [])
        column = round(float(x) / cell)
        row.extend(" " * (column - len(row)))
        row[column : column + len(text)] = list(text)
    return "\n".join("".join(lines.get(y, [])).rstrip() for y in range(app.size.height))
