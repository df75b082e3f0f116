"""The dashboard's styles by meaning (alarm, warning, fine, idle), per theme and without colour (`NO_COLOR`).

Each colour is chosen for the background it is drawn on, so it reads at 4.5:1 or better (WCAG AA for text):
one set for dark themes (`textual-dark`: #121212-#2a2a2a), one for light ones (`textual-light`: #c8c8c8-#e0e0e0),
each colour then lightened (dark) or darkened (light) as far as the running theme's own background, surface and
panel need (`theme_styles`): nord's panels (#3b4252) took the dark set's red to 3.6:1, and a user picks any of
Textual's built-in themes with `TEXTUAL_THEME`.
ANSI names would not do: Textual maps them to RGB through its own ANSI theme (Monokai's yellow, #fd971f, is an
orange that a 16-colour terminal rounds to bright red; Alabaster's yellow is 2.1:1 on the light theme's grey). On a
16-colour terminal the app sends ANSI colours as they are (`DashboardApp`, `ansi_color`) and the ANSI set below is
used, the terminal's own palette drawing them; there grey (bright black, the background itself in Solarized) is
never used: what is grey elsewhere is normal text.

A warning is bold as well as yellow: for a red-green colour-blind reader the warning yellow and the fine green are
one colour, so the colour cannot be the only cue.

Under `NO_COLOR` Textual turns every colour into the grey of the same luminance, and red's grey (#3a3a3a) is darker
than any text on a dark background: the alarms would be the least visible thing on the screen. So without colour
the meaning moves to attributes instead: an alarm is bold reverse video, a warning bold, and nothing that matters
is left to a colour. Bars are the exception: reverse video would turn a bar upside down (its height is its value),
so a hot bar is only bold, in the text's own colour, never a dark grey.
"""

from __future__ import annotations

import os

# Private, for want of a public way: the same ContextVar is re-exported as `textual.active_app` (Textual's own
# `_callback.py` imports it so) but not in `textual.__all__` (mypy --strict: "does not explicitly export"), and
# `textual.getters.app` is a descriptor of DOM nodes, which a renderable is not.
from textual._context import active_app
from textual.color import BLACK, WHITE, Color
from textual.theme import Theme

#: Meaning -> style in ANSI names: a 16-colour terminal's own palette, and renderables drawn without an App.
COLOUR_STYLES = {
    "alarm": "bold red",
    "stale": "bold yellow",  # data N s old
    "warn": "bold yellow",
    "ok": "green",
    "idle": "",  # never bright black: some palettes draw it in the background's own colour
    "hot": "bold red",
    "secondary": "",  # what is said beside the data: n/a, a down node's reason, event times
    "graph": "cyan",  # a history graph's columns
    "over": "bold red",  # a graph's columns above its ceiling (the facility budget)
}
#: The same on a dark theme's background (#121212 to #2a2a2a): every colour 5:1 or better.
DARK_STYLES = {
    "alarm": "bold #ff6b6b",
    "stale": "bold #ffd75f",
    "warn": "bold #ffd75f",
    "ok": "#7fd962",
    "idle": "#a8a8a8",
    "hot": "bold #ff6b6b",
    "secondary": "#a8a8a8",  # a down node's reason is what the operator reads first: 6:1, not a dim grey
    "graph": "#5fd7ff",
    "over": "bold #ff6b6b",
}
#: The same on a light theme's background (#c8c8c8 to #e0e0e0): every colour 4.5:1 or better.
LIGHT_STYLES = {
    "alarm": "bold #b00020",
    "stale": "bold #7a4f00",
    "warn": "bold #7a4f00",
    "ok": "#1a5e1f",
    "idle": "#555555",
    "hot": "bold #b00020",
    "secondary": "#555555",
    "graph": "#005a80",
    "over": "bold #b00020",
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
    "graph": "",
    "over": "bold reverse",
}
#: The same for one-cell bars, whose height is their value (reverse video would invert it).
PLAIN_BAR_STYLES = {
    "alarm": "bold",
    "stale": "bold",
    "warn": "",
    "ok": "",
    "idle": "",
    "hot": "bold",
    "secondary": "",
    "graph": "",
    "over": "bold",
}


def no_color() -> bool:
    """True when `NO_COLOR` is set, to any value: Textual's own test (docs/dashboard.md, "Terminals")."""
    return os.environ.get("NO_COLOR") is not None


#: The contrast every colour of a set is given against each of its theme's backgrounds (WCAG AA's 4.5, and a margin).
TEXT_CONTRAST = 4.55
#: The theme variables the dashboard draws words on (Textual's colour system, `Theme.to_color_system`).
BACKGROUNDS = ("background", "surface", "panel")

#: (theme name, the App's `ansi_color`) -> the set it uses: found once, then read ~30 times per node row drawn.
_CHOSEN: dict[tuple[str, bool | None], dict[str, str]] = {}


def contrast(a: Color, b: Color) -> float:
    """WCAG's contrast ratio of two opaque colours, 1 to 21."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _luminance(colour: Color) -> float:
    def channel(value: int) -> float:
        v = value / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = colour.rgb
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def readable(colour: Color, backgrounds: list[Color], dark: bool) -> Color:
    """`colour` when it reads on every one of `backgrounds`, else its nearest blend that does.

    The blend is toward white on a dark theme, toward black on a light one, in steps of 5%, to `TEXT_CONTRAST`.
    """
    toward = WHITE if dark else BLACK
    for step in range(21):
        candidate = colour.blend(toward, step / 20)
        if all(contrast(candidate, background) >= TEXT_CONTRAST for background in backgrounds):
            return candidate
    return toward


def theme_styles(theme: Theme) -> dict[str, str]:
    """The dark or the light set, each colour made readable on `theme`'s own backgrounds (`readable`)."""
    base = DARK_STYLES if theme.dark else LIGHT_STYLES
    variables = {**theme.to_color_system().generate(), **theme.variables}
    backgrounds = [Color.parse(variables[name]) for name in BACKGROUNDS if name in variables]
    styles = {}
    for meaning, style in base.items():
        *attributes, colour = style.split() or [""]
        if colour.startswith("#"):
            colour = readable(Color.parse(colour), backgrounds, theme.dark).hex.lower()
        styles[meaning] = " ".join([*attributes, colour]).strip()
    return styles


def colour_styles() -> dict[str, str]:
    """The set for where the dashboard is drawn: the running App's theme (dark or light) or its 16 ANSI colours."""
    try:
        app = active_app.get()
    except LookupError:  # a renderable drawn on its own, outside the dashboard
        return COLOUR_STYLES
    key = (app.theme, app.ansi_color)
    chosen = _CHOSEN.get(key)
    if chosen is None:
        theme = app.current_theme
        ansi = theme.ansi if app.ansi_color is None else app.ansi_color
        chosen = _CHOSEN[key] = COLOUR_STYLES if ansi else theme_styles(theme)
    return chosen


def tone(meaning: str, plain: bool | None = None) -> str:
    """The style of text that means `meaning` (a key of `COLOUR_STYLES`); `plain` defaults to `no_color()`."""
    return PLAIN_STYLES[meaning] if (no_color() if plain is None else plain) else colour_styles()[meaning]


def bar_tone(meaning: str, plain: bool | None = None) -> str:
    """The style of a one-cell bar that means `meaning`; `plain` defaults to `no_color()`."""
    return PLAIN_BAR_STYLES[meaning] if (no_color() if plain is None else plain) else colour_styles()[meaning]
