"""Why a screen's Mount handler may find none of its widgets: the dashboard began to quit as it was being built.

From `App.exit()` on (`q`, Ctrl-C, SIGTERM/SIGINT/SIGHUP), Textual mounts no more widgets, yet a screen pushed a
moment earlier still gets its Mount event, and the app still handles the messages queued before its exit. A screen
composed then is hollow: a handler that queries its widgets raised `NoMatches`, which turned `factoryctl dash`
killed as it started into an internal error (exit 1) instead of 143. Such handlers return early while quitting.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen

if TYPE_CHECKING:
    from factoryctl.tui.app import DashboardApp


def quitting(screen: Screen[Any]) -> bool:
    """Whether the dashboard is on its way out, so `screen` may lack the widgets it composed (nothing to set up)."""
    return cast("DashboardApp", screen.app).exiting
