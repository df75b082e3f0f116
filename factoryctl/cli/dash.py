"""`factoryctl dash [TARGET] [--read-only]`: the live dashboard. Textual is imported only when it opens."""

from __future__ import annotations

import typer

from factoryctl.cli import context

#: The streams the dashboard needs on a terminal, stdout first (a script's case, answered by the caller's hint),
#: each with the hint for when it alone is not one: why the dashboard needs it.
TERMINAL_STREAMS = (
    ("standard output", "stdout", None),
    (
        "standard input",
        "stdin",
        "the dashboard reads its keys from standard input (with `< file` or a pipe no key would work): "
        "run it without redirecting it.",
    ),
    (
        "standard error",
        "stderr",
        "Textual draws the screen on standard error (`2> file` fills the file with escape codes, `2> /dev/null` "
        "shows nothing): run it without redirecting it.",
    ),
)


#: Characters the dashboard draws with (bars, sparklines, box lines, the ellipsis of a cut name).
DRAWN_CHARACTERS = "▁▂▃▄▅▆▇█─│┌┐└┘…"

DUMB_TERMINAL_HINT = (
    "run it in a terminal that sets TERM to its kind (xterm-256color, screen, tmux-256color): Emacs's M-x shell "
    "and M-x compile set TERM=dumb, M-x term and vterm do not."
)
ENCODING_HINT = "use a UTF-8 locale (`export LANG=C.UTF-8`; PYTHONIOENCODING unset or utf-8) in a UTF-8 terminal."


def require_terminal(hint: str) -> None:
    """The dashboard (`dash`, `demo`) runs on a terminal: stdout, stdin and stderr must all be one, and able to draw it.

    Without one, a usage error (exit 2) before anything runs that names the first stream that is not a terminal:
    standard output with `hint` (what to use in a script instead), standard input or error with why it is needed.
    So is TERM=dumb (no cursor control: the full screen would be escape codes on it) and an encoding on stderr,
    where Textual draws, that cannot write the dashboard's block and box characters (ASCII, ISO-8859-1: every bar
    and line was a `?`). A full Unicode encoding other than UTF-8 (GB18030) draws them, and is let through.
    """
    import sys

    from factoryctl.errors import UsageError

    for name, attr, why in TERMINAL_STREAMS:
        stream = getattr(sys, attr)
        if stream is None or not stream.isatty():
            raise UsageError(f"the dashboard needs a terminal, and {name} is not one.", why or hint)
    from factoryctl.cli.screen_fit import moves_cursor

    if not moves_cursor():
        raise UsageError(
            "the dashboard needs a terminal with cursor control, and TERM=dumb says this one has none.",
            DUMB_TERMINAL_HINT,
        )
    encoding = getattr(sys.stderr, "encoding", None) or "ascii"
    try:
        DRAWN_CHARACTERS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        raise UsageError(
            f"the dashboard draws bars and boxes in Unicode, which this terminal's encoding, {encoding}, cannot show.",
            ENCODING_HINT,
        ) from None


def register(app: typer.Typer) -> None:
    """Add `dash` to the root app."""

    @app.command("dash", short_help="The live dashboard: node states, GPU bars, power, actions.")
    def dash_command(
        ctx: typer.Context,
        target: str = typer.Argument(
            "all",
            help="Node set, @group or all: the nodes to watch.",
            autocompletion=context.complete_target,
        ),
        read_only: bool = typer.Option(False, "--read-only", help="Hide drain, resume and power-cap actions."),
    ) -> None:
        """The live dashboard: node states, per-GPU bars, power against the budget; drain, resume and cap nodes.

        q quits (exit 0), Ctrl-C or SIGINT too (exit 130); SIGTERM (exit 143) and SIGHUP (exit 129) restore
        the terminal first.
        ? lists every key.
        """
        from factoryctl.telemetry.poll import check_agent_cache

        config = context.load(ctx)
        # a bad TARGET (usage) or $FACTORYCTL_REMOTE_CACHE (config) is an error before the screen changes
        check_agent_cache(config.resolve_target(target))
        require_terminal("in scripts use `factoryctl gpus --watch` or `factoryctl nodes list -o json`.")
        from factoryctl.stale_code import freeze_code
        from factoryctl.tui.app import run_dashboard

        freeze_code()  # its collector, when a controller hands back, must not load or ship an upgrade's files

        status = run_dashboard(config, read_only=read_only, target=None if target == "all" else target)
        if status:
            raise typer.Exit(status)  # 130 after Ctrl-C or SIGINT, 143 after SIGTERM, 129 after SIGHUP
