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


def require_terminal(hint: str) -> None:
    """The dashboard (`dash`, `demo`) runs on a terminal: stdout, stdin and stderr must all be one.

    Without one, a usage error (exit 2) before anything runs that names the first stream that is not a terminal:
    standard output with `hint` (what to use in a script instead), standard input or error with why it is needed.
    """
    import sys

    for name, attr, why in TERMINAL_STREAMS:
        stream = getattr(sys, attr)
        if stream is None or not stream.isatty():
            from factoryctl.errors import UsageError

            raise UsageError(f"the dashboard needs a terminal, and {name} is not one.", why or hint)


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
        from factoryctl.tui.app import run_dashboard

        status = run_dashboard(config, read_only=read_only, target=None if target == "all" else target)
        if status:
            raise typer.Exit(status)  # 130 after Ctrl-C or SIGINT, 143 after SIGTERM, 129 after SIGHUP
