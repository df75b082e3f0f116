"""The options many commands share (`-o`, `--no-header`, `--watch`, `--interval`, `--fanout`) and the checks of their values.

One definition each, so every command spells, bounds and documents them alike. They live apart from the rendering
(cli/render.py), which the commands call only once they run: building `--help` imports this module and what its
defaults need (the fan-out's bounds), not the renderers.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from factoryctl.cli.completion import complete_choices
from factoryctl.cli.context import global_options, seconds_check
from factoryctl.cli.render import OutputFormat
from factoryctl.transport.fanout import DEFAULT_FANOUT, FANOUT_NOTES, MAX_FANOUT


def checked_choice(text: str, choices: Sequence[str], what: str) -> str:
    """`text` (lower-cased) if it is one of `choices`, else our usage error naming them, with a did-you-mean."""
    if text.lower() in choices:
        return text.lower()
    import difflib

    from factoryctl.errors import UsageError

    near = difflib.get_close_matches(text.lower(), choices, n=1)
    suggestion = f"; did you mean {near[0]}?" if near else "."
    raise UsageError(f"unknown {what} {text!r}.", f"choose from {', '.join(choices)}{suggestion}")


def parse_output_format(value: object) -> OutputFormat:
    """The `-o` value as an OutputFormat; anything else is our usage error (one sentence, a did-you-mean hint)."""
    if isinstance(value, OutputFormat):
        return value
    return OutputFormat(checked_choice(str(value), [f.value for f in OutputFormat], "output format"))


def parse_document_format(value: object) -> OutputFormat:
    """`parse_output_format` for a command that prints one document or its own output, not a listing: no csv.

    A mistyped value is matched against DOCUMENT_FORMATS only, so the hint never offers the csv it would refuse.
    """
    if isinstance(value, OutputFormat):
        chosen = value
    elif str(value).lower() == OutputFormat.csv.value:
        chosen = OutputFormat.csv
    else:
        chosen = OutputFormat(checked_choice(str(value), DOCUMENT_FORMATS, "output format"))
    if chosen is OutputFormat.csv:
        from typer._click.globals import get_current_context

        from factoryctl.errors import UsageError

        ctx = get_current_context(silent=True)
        command = ctx.command_path if ctx is not None else "this command"
        raise UsageError(
            f"`{command}` prints no flat rows (one document, or items with nested lists), so it has no -o csv.",
            f"choose from {', '.join(DOCUMENT_FORMATS)} (e.g. -o json, and jq's @csv).",
        )
    return chosen


#: `-o/--output`: the choices still drive help and shell completion; the parser turns a bad value into our error.
OUTPUT_OPTION = typer.Option(
    OutputFormat.table, "--output", "-o", parser=parse_output_format, help="table, wide, json, yaml or csv."
)
#: `-o/--output` of the commands that print no listing (`config show`, `controller status`, `power simulate`,
#: `nodes trust`, `nodes check`): csv is refused there rather than quietly printing a table.
#: Its help and completion offer those four only (the enum's choices would list csv, then refuse it).
DOCUMENT_FORMATS = ("table", "wide", "json", "yaml")
DOCUMENT_OUTPUT_OPTION = typer.Option(
    OutputFormat.table,
    "--output",
    "-o",
    parser=parse_document_format,
    metavar=f"<{'|'.join(DOCUMENT_FORMATS)}>",
    autocompletion=complete_choices(DOCUMENT_FORMATS),
    help="table, wide, json or yaml.",
)
NO_HEADER_OPTION = typer.Option(False, "--no-header", help="Omit the table or csv header.")
#: `--no-header` of `nodes trust` and `nodes check`, whose only table-like output is their table.
DOCUMENT_NO_HEADER_OPTION = typer.Option(False, "--no-header", help="Omit the table header.")
WATCH_OPTION = typer.Option(False, "--watch", "-w", help="Redraw in place every interval, like watch.")
INTERVAL_OPTION = typer.Option(
    2.0,
    "--interval",
    callback=seconds_check("--interval", 0.1, "5"),
    help="Seconds between --watch redraws (0.1-86400).",
)


def _note_asked_fanout(ctx: typer.Context, param: typer.CallbackParam, value: int) -> int:
    """Tell the fan-out whether the user gave `--fanout` (and not `--quiet`): lowering it then prints a note."""
    source = None if param.name is None else ctx.get_parameter_source(param.name)
    given = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")  # typed on the command line, or env
    quiet = global_options(ctx)[1]
    FANOUT_NOTES.asked(value if given else None, None if quiet else _say_on_stderr)
    return value


def _say_on_stderr(text: str) -> None:
    typer.echo(f"factoryctl: {text}", err=True)


#: `-f/--fanout` of every command that works on nodes in parallel (`nodes list`, `gpus`, `exec`, `nodes trust`,
#: `nodes check`): one default, one range, one short form (a thread per node in flight, see transport/fanout.py).
#: More than the open-file limit has room for is lowered to what fits, with a note (transport/fanout.py).
FANOUT_OPTION = typer.Option(
    DEFAULT_FANOUT,
    "--fanout",
    "-f",
    min=1,
    max=MAX_FANOUT,
    callback=_note_asked_fanout,
    help=(
        f"Nodes worked on at once (1-{MAX_FANOUT}); fewer if the open-file limit (ulimit -n) has no room for them;"
        " under --watch a node not answering for 1 s gives its place to the next."
    ),
)
