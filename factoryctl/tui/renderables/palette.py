"""The dashboard's styles by meaning (alarm, warning, fine, idle), with colour and without it (`NO_COLOR`).

Under `NO_COLOR` Textual turns every colour into the grey of the same luminance, and red's grey (#3a3a3a) is darker
than any text on a dark background: the alarms would be the least visible thing on the screen. So without colour
the meaning moves to attributes instead: an alarm is bold reverse video, a warning bold, and nothing that matters
is left to a colour. Bars are the exception: reverse video would turn a bar upside down (its height is its value),
so a hot bar is only bold, in the text's own colour, never a dark grey.
"""

from __future__ import annotations

import os

#: Meaning -> style with colour (ANSI names: both dark and light palettes render them legibly).
COLOUR_STYLES = {
    "alarm": "bold red",
    "stale": "bold yellow",  # data N s old
    "warn": "yellow",
    "ok": "green",
    "idle": "bright_black",
    "hot": "bold red",
    "secondary": "bright_black",  # what is said beside the data: n/a, a down node's reason, event times
}
#: Meaning -> style without colour: at least as readable as normal text, never a dark grey.
PLAIN_STYLES = {
    "alarm": "bold reverse",
    "stale": "bold reverse",
    "warn": "bold",
    "ok": "",
    "idle": "",
    "hot": "bold reverse",
    "secondary": "",  # normal text: a down node's reason is what the operator reads first
}
#: The same for one-cell bars, whose height is their value (reverse video would invert it).
PLAIN_BAR_STYLES = {"alarm": "bold", "stale": "bold", "warn": "", "ok": "", "idle": "", "hot": "bold", "secondary": ""}


def no_color() -> bool:
    """True when `NO_COLOR` is set, to any value: Textual's own test (docs/dashboard.md, "Terminals")."""
    return os.environ.get("NO_COLOR") is not None


def tone(meaning: str, plain: bool | None = None) -> str:
    """The style of text that means `meaning` (a key of `COLOUR_STYLES`); `plain` defaults to `no_color()`."""
    return (PLAIN_STYLES if (no_color() if plain is None else plain) else COLOUR_STYLES)[meaning]


def bar_tone(meaning: str, plain: bool | None = None) -> str:
    """The style of a one-cell bar that means `meaning`; `plain` defaults to `no_color()`."""
    return (PLAIN_BAR_STYLES if (no_color() if plain is None else plain) else COLOUR_STYLES)[meaning]
