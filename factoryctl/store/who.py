"""Who made a change: the login name written with every drain and audited power-limit change.

`getpass.getuser()` raises where the uid has no passwd entry and USER/LOGNAME are unset (a container started with
an arbitrary uid, a cron job with a bare environment); the change itself must not fail on that, and the record
says "unknown" rather than nothing. The name comes from LOGNAME/USER first, which anyone can set: its control
characters are escaped (`escape_controls`), so the records shown later (`audit`, drains) cannot drive the terminal.
"""

from __future__ import annotations

import getpass

from factoryctl.model.telemetry import escape_controls

#: The longest login name kept (LOGNAME can be anything): a longer one is cut, so no record widens every table.
MAX_LOGIN_CHARS = 64


def login_name() -> str:
    """The login name of this process's user, or "unknown" when the system has none."""
    try:
        name = escape_controls(getpass.getuser())
    except (KeyError, OSError):
        return "unknown"
    return name if len(name) <= MAX_LOGIN_CHARS else name[: MAX_LOGIN_CHARS - 3] + "..."
