"""The console script's entry point: the CLI is imported inside a guard, so a Ctrl-C while it loads is said too.

Importing the CLI (typer, click, the command modules) takes a tenth of a second or more. A Ctrl-C in that window
escaped as a KeyboardInterrupt traceback, before the error boundary in `app.py` existed to say it. Here it ends as
every stop does: `factoryctl: interrupted` and its hint, exit 130. Only the standard library is imported first.
"""

from __future__ import annotations

import sys

from factoryctl.cli.daemon_hangup import hold_hangups_from_now

#: As `signals.STOPPED_HINTS` words it; that module imports typer, which is what may be loading.
_INTERRUPTED = (
    "factoryctl: interrupted\nhint: Ctrl-C stopped it (exit 130); run the command again for a complete result.\n"
)


def main() -> None:
    """Import the CLI and run it (`app.main`); a Ctrl-C during the import exits 130 with the sentence and hint.

    A daemon's SIGHUP is held from here on (`daemon_hangup`): `systemctl reload` during the import is a reload.
    """
    hold_hangups_from_now(sys.argv[1:])
    try:
        from factoryctl.cli.app import main as run_cli
    except KeyboardInterrupt:
        from factoryctl.cli.stderr_lost import lose_messages_from_now  # the standard library only
        from factoryctl.errors import ExitCode  # loaded by then, or as light as the standard library

        lose_messages_from_now()  # a full or gone stderr loses the sentence; the exit stays 130, not 1 or 120
        sys.stderr.write(_INTERRUPTED)
        raise SystemExit(ExitCode.INTERRUPTED) from None
    run_cli()
