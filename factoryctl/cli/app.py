"""The root `factoryctl` app, its global options, and the one error boundary of the CLI.

Noun modules are small Typer apps that import their heavy dependencies inside the command functions, so building
this app (for `--help` and every completion keystroke) costs little more than importing typer. How the process
ends once the boundary has decided its status (closed standard streams, a late Ctrl-C) is cli/process_exit.py's.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from factoryctl import __version__
from factoryctl.cli.arguments import exact_path
from factoryctl.cli.daemon_hangup import runs_as_daemon
from factoryctl.cli.help_only import called
from factoryctl.cli.process_exit import (
    exit_now_on_interrupt,
    ignore_interrupts_at_the_very_end,
    silence_stderr,
    silence_stdout,
    stand_in_for_closed_streams,
)
from factoryctl.cli.signals import (
    Interrupted,
    LoadInterrupted,
    StopBlock,
    Terminated,
    put_back,
    report_stopped,
    sigterm_interrupts,
    stop_status,
    stopped_status,
)
from factoryctl.cli.stderr_lost import lose_messages_from_now, messages_only
from factoryctl.errors import ExitCode, FactoryError, NodeError

if TYPE_CHECKING:
    from typer._click import Context as ClickContext
    from typer._click.exceptions import UsageError as ClickUsageError

#: (module under factoryctl.cli, attribute, noun, help). A module that registers a single command instead of a
#: sub-app exposes `register(app)`.
NOUNS: tuple[tuple[str, str, str], ...] = (
    ("config", "config", "Check and print the resolved factory.yaml."),
    ("nodes", "nodes", "List, trust, check, drain and resume nodes."),
    ("sim", "sim", "Inject faults into simulated nodes."),
    ("telemetry", "telemetry", "Collect, store and export telemetry."),
    ("jobs", "jobs", "Submit, list, show and cancel gang jobs; read their logs."),
    ("sched", "sched", "Run a scheduling pass; replay a job trace through the scheduler and explain it."),
    ("price", "price", "Grid electricity prices."),
    ("power", "power", "Set and reset GPU power limits; apply or replay a grid-price power policy."),
    ("controller", "controller", "The factoryctl daemon: telemetry into the store; its status."),
)

#: The line `factoryctl --help` lists for a noun whose help is longer than its 80-column row (else the help itself).
NOUN_SUMMARIES: dict[str, str] = {
    "sched": "Run a scheduling pass; replay a job trace and explain it.",
    "power": "GPU power limits; apply or replay a grid-price power policy.",
}

#: What `factoryctl --help` says first: what exists today, and what is announced (README.md says the same).
ROOT_HELP = (
    "The operator's console for an AI factory: GPU telemetry, power limits and commands on every node over SSH, a "
    "live dashboard, gang jobs queued and launched on every node they hold, and grid-price power policies applied "
    "by the price now or replayed over a price file."
)

#: Verbs of a noun that live in their own modules (each exposes `register(noun_app)`).
VERB_MODULES: dict[str, tuple[str, ...]] = {
    "jobs": ("jobs_submit", "jobs_cancel", "jobs_logs"),
    "nodes": ("nodes_trust", "nodes_drain"),
    "power": ("power_limits", "power_policy"),
    "sched": ("sched_explain", "sched_tick"),
    "telemetry": ("telemetry_history",),
}

#: Modules that add top-level commands (`init`, `gpus`, `exec`, `demo`, `dash`, ...) through `register(app)`.
COMMAND_MODULES: tuple[str, ...] = ("init", "gpus", "exec", "demo", "dash", "events", "metrics", "completion")


@dataclass
class GlobalOptions:
    """Options given before the noun, shared by every command through `ctx.obj`."""

    config: Path | None = None
    quiet: bool = False
    debug: bool = False


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"factoryctl {__version__}")
        raise typer.Exit()


class StopReportingGroup(TyperGroup):
    """The root group: a Ctrl-C that leaves a command reaches the error boundary (`run`) as `Interrupted`.

    Typer would turn it into a silent exit 130, and the stop would be said nowhere (docs/cli.md, Exit codes). That
    holds from the root's own parsing on (Typer builds each option's converter then, importing pydantic: a Ctrl-C in
    the first second of a run lands there), which raises `LoadInterrupted`: no follow loop ran yet, so it is said.
    """

    def make_context(
        self, info_name: str | None, args: list[str], parent: ClickContext | None = None, **extra: object
    ) -> ClickContext:
        """The root's context, its global options parsed; a KeyboardInterrupt meanwhile leaves as `LoadInterrupted`."""
        try:
            return super().make_context(info_name, args, parent, **extra)
        except KeyboardInterrupt as interrupt:
            raise LoadInterrupted from interrupt

    def invoke(self, ctx: ClickContext) -> object:
        """Run the command; its KeyboardInterrupt leaves as `Interrupted`."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as interrupt:
            raise Interrupted from interrupt

    def _main_shell_completion(
        self, ctx_args: MutableMapping[str, Any], prog_name: str, complete_var: str | None = None
    ) -> None:
        """A shell's completion request, answered by our zsh and fish classes (`completion.use_our_completers`).

        Typer registers its own classes each time the app is built, just before this runs.
        """
        _cli_module("completion").use_our_completers()
        super()._main_shell_completion(ctx_args, prog_name, complete_var)


app = typer.Typer(
    name="factoryctl",
    cls=StopReportingGroup,
    help=ROOT_HELP,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        path_type=str,
        callback=exact_path(),  # '' is refused, never the current directory; `-` is the file named `-`
        help="factory.yaml to use (else $FACTORYCTL_CONFIG, ./factory.yaml, XDG dir).",
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="Print only results, warnings and errors: no notes, progress or summaries."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """The root callback: keeps the global options in `ctx.obj`."""
    ctx.obj = GlobalOptions(config=config, quiet=quiet, debug=debug)


def _cli_module(name: str) -> ModuleType:
    """Import `factoryctl.cli.<name>` (a missing one is a packaging bug and fails loudly)."""
    return importlib.import_module(f"factoryctl.cli.{name}")


def _register_all() -> None:
    for module_name, noun, help_text in NOUNS:
        module = _cli_module(module_name)
        for verb_module in map(_cli_module, VERB_MODULES.get(noun, ())):
            verb_module.register(module.app)
        module.app.rich_markup_mode = None  # plain help: rich's renderer would triple start-up time
        app.add_typer(module.app, name=noun, help=help_text, short_help=NOUN_SUMMARIES.get(noun))
    for module in map(_cli_module, COMMAND_MODULES):
        module.register(app)


_register_all()


def _print_error(error: FactoryError) -> None:
    """`factoryctl: <one sentence>.` and `hint: ...` on stderr; the sentence gets its full stop if it lacks one.

    A node's error names its node first (`factoryctl: n01: ...`), as the summary of a fan-out's errors does: its
    message does not (the error's `node` does), unless the sentence already begins with it (`n01 is not connected`).
    """
    message = error.said() if isinstance(error, NodeError) else error.message.rstrip()
    if message and message[-1] not in ".!?":
        message += "."
    from factoryctl.cli.render import terminal_safe

    sys.stderr.write(terminal_safe(f"factoryctl: {message}") + "\n")
    if error.hint:
        sys.stderr.write(terminal_safe(f"hint: {error.hint}") + "\n")


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("FACTORYCTL_DEBUG") == "1"


def _click_exceptions() -> ModuleType:
    """Click's exception module: typer >= 0.26 vendors click as `typer._click`, older typer uses click itself."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def run(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit status (the test environment calls this).

    With `--debug`, the tracebacks of nodes' unexpected failures follow the command's output on stderr. A stop
    signal once the command's block has ended changes nothing (`process_exit.outcome_kept`); the handlers that were
    in place come back on return, unless `argv` is None: the process's own command line (`main`), and the process
    ends with the status decided, so the stops stay quiet to its end.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    replaced: dict[int, Any] = {}
    with messages_only():  # a stderr that cannot be written loses the messages; the status stays the command's
        try:
            if not _debug_requested(args):
                return _run(args, replaced)
            from factoryctl.cli.render import report_node_tracebacks
            from factoryctl.transport.fanout import NODE_TRACEBACKS

            with NODE_TRACEBACKS.keeping():
                try:
                    return _run(args, replaced)
                finally:
                    report_node_tracebacks(NODE_TRACEBACKS.taken())
        finally:
            if argv is not None:
                put_back(replaced)


def _run(args: list[str], replaced: dict[int, Any]) -> int:
    """`run`: the command, and every way it can end turned into an exit status (and its sentence on stderr).

    The handlers the command's block replaced go into `replaced`, a quiet one in their place (`sigterm_interrupts`).
    A stop's outcome that cannot be written (its terminal closed: EIO) keeps the stop's status (`_said_or_not`).
    """
    # SIGTERM/SIGHUP said `terminated`/`hung up` (143/129) if they leave; a daemon's SIGHUP is a reload
    boundary = sigterm_interrupts(hangup_reloads=runs_as_daemon(args), replaced=replaced)
    try:
        return _outcome(args, boundary)
    except OSError as error:  # writing the stop's outcome on stdout failed (stderr's writes never raise)
        return _said_or_not(error, boundary.first_stop)


def _outcome(args: list[str], boundary: StopBlock) -> int:
    """`_run`'s command in its `boundary` block, the outcome said (a stdout write failing on the way raises OSError).

    A write on stderr never raises (`stderr_lost.messages_only`): its messages are lost, the status stays the command's.
    """
    click = _click_exceptions()
    try:
        _cli_module("arguments").check_text_arguments(args)  # bytes that are not UTF-8: exit 2 before any change
        with boundary:
            result = called(app, args)  # `[NOUN [VERB]] --help` builds only the command it shows (help_only.py)
    except FactoryError as error:
        if _debug_requested(args):
            import traceback

            traceback.print_exc()
        _print_error(error)
        return int(error.exit_code)
    except Interrupted as interrupted:
        if isinstance(interrupted, LoadInterrupted) or not _runs_until_stopped(args):
            report_stopped(ExitCode.INTERRUPTED)
        return int(ExitCode.INTERRUPTED)
    except (KeyboardInterrupt, typer.Abort):  # a prompt's Ctrl-C (Abort), or one before the command ran
        report_stopped(ExitCode.INTERRUPTED)
        return int(ExitCode.INTERRUPTED)
    except Terminated as stopped:  # SIGTERM or SIGHUP as the block's handlers went in: before the command ran
        report_stopped(stopped_status(stopped))
        return stopped_status(stopped)
    except getattr(click, "NoArgsIsHelpError", ()) as error:  # `factoryctl sim`: its help, as Click prints it
        error.show()
        return int(ExitCode.USAGE)
    except click.UsageError as error:
        _print_error(_usage_error(error, args))
        return int(ExitCode.USAGE)
    except click.ClickException as error:
        _print_error(FactoryError(_sentence(error.format_message())))
        return int(error.exit_code)
    except typer.Exit as stop:
        return int(stop.exit_code)
    except OSError as error:
        return _said_or_not(error, boundary.first_stop)
    except SystemExit as stop:  # click turns EPIPE into a silent exit 1 before it reaches us
        if isinstance(stop.__context__, OSError) and stop.__context__.errno == errno.EPIPE:
            return _said_or_not(stop.__context__, boundary.first_stop)
        raise
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


def _runs_until_stopped(args: list[str]) -> bool:
    """Whether `args` ran a command that goes on until stopped, so that Ctrl-C is how it ends, quietly (docs/cli.md).

    `--follow`, `--watch` and `metrics serve`: told from the arguments parsed again as the command parsed them.
    """
    command, path, rest = _resolve(args)
    if path == ["factoryctl", "metrics", "serve"]:
        return True
    try:
        parsed = command.make_context(path[-1], list(rest), resilient_parsing=True)
    except Exception:  # a command line that no longer parses ran no follow loop
        return False
    return bool(parsed.params.get("follow") or parsed.params.get("watch"))


def _sentence(text: str) -> str:
    """Click's `No such option: -o` as our sentences read: lower case first (`NO_COLOR`, `GPU` keep theirs)."""
    head, colon, detail = text.partition(": ")
    if colon:
        return _sentence(head) + colon + _sentence(detail)
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _usage_error(error: Any, args: list[str]) -> FactoryError:  # noqa: ANN401 - a Click UsageError; only some subclasses have option_name, possibilities
    """A usage error Click raised (unknown option or command, bad or missing value) as our sentence and hint.

    Click's own content stays (the option, the value, its "did you mean"); the hint names the command's help, or,
    for a global option given after the command (`power set n1 --watts 300 -q`), where it goes instead.
    """
    moved = _global_option_moved(error, args)
    if moved is not None:
        return FactoryError(_sentence(f"No such option: {error.option_name}"), moved)
    if getattr(error, "possibilities", None):  # NoSuchOption: Click's near options, nearest first
        message = f"{error.message}; did you mean {' or '.join(error.possibilities)}?"
    else:
        message = error.format_message()
    message = _sentence(_one_line(message.replace(". Did you mean", "; did you mean")))
    path = error.ctx.command_path if error.ctx is not None else _command_path(args)
    return FactoryError(message, f"see `{path} --help`.")


def _one_line(message: str) -> str:
    """Click's choices list (`Choose from:` then a tab-indented line per choice) folded into the sentence."""
    head, sep, choices = message.partition(" Choose from:")
    if not sep:
        return " ".join(line.strip() for line in message.splitlines())
    names = [c.strip().rstrip(",.") for c in choices.split() if c.strip().rstrip(",.")]
    listed = ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)
    return f"{head.rstrip('.')}: choose {listed}"


def _global_option_moved(error: ClickUsageError, args: list[str]) -> str | None:
    """The hint for a root option (`-q`, `-c`, `--debug`, `--version`) given after the command, else None.

    The hint is the command with the option (and the value it takes, as typed) before the noun, where Click parses it.
    """
    name = getattr(error, "option_name", None)
    if not name or error.ctx is None or error.ctx.parent is None:
        return None
    root = error.ctx.find_root()
    param = next((p for p in root.command.params if name in (*p.opts, *p.secondary_opts)), None)
    if param is None:
        return None
    root_name = root.info_name or "factoryctl"
    if getattr(param, "is_eager", False):  # --version: it answers on its own
        return f"global options go before the command: `{root_name} {name}`."
    option = name
    if not getattr(param, "is_flag", False):
        at = len(args) - 1 - args[::-1].index(name) if name in args else len(args)
        option += " " + (args[at + 1] if at + 1 < len(args) else "FILE")
    rest = error.ctx.command_path.removeprefix(root_name).strip()
    return f"global options go before the command: `{root_name} {option} {rest} ...`."


def _command_path(args: list[str]) -> str:
    """The command `args` name (`factoryctl nodes list`), for the errors Click raises without their context."""
    return " ".join(_resolve(args)[1])


def _resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The command `args` name, its path (`["factoryctl", "nodes", "list"]`) and the arguments after its name."""
    from typer.main import get_command

    command, path, after = get_command(app), ["factoryctl"], len(args)
    at = 0
    while at < len(args):
        word = args[at]
        if word == "--":
            break
        if word in ("-c", "--config"):
            at += 1
        elif not word.startswith("-"):
            sub = getattr(command, "commands", {}).get(word)
            if sub is None:
                break
            command, after = sub, at + 1
            path.append(word)
        at += 1
    return command, path, args[after:]


def _said_or_not(error: OSError, stop: int | None) -> int:
    """The exit status when writing stdout failed with `error`, `stop` the signal that stopped the command if any.

    A stop's outcome that could not be written keeps the stop's status, quietly: closing the terminal sends SIGHUP,
    and the stop's output then fails with EIO, which made the exit 1 where docs/cli.md says 129; EPIPE too (a reader
    that a Ctrl-C ended as well). Otherwise: stdout's reader went away (EPIPE: 141, quietly), or one sentence and exit
    1 (a full disk, EIO, a closed stdout); any other error is raised again. stderr's failures never come here: they
    lose the messages only (`stderr_lost`), its sentence among them.
    """
    broken_pipe = isinstance(error, BrokenPipeError) or error.errno == errno.EPIPE  # raised bare too (no errno)
    if stop is not None and (broken_pipe or error.errno == errno.EIO):
        silence_stdout()  # the interpreter's last flush of either stream would fail the same way (exit 120)
        silence_stderr()
        return stop_status(stop)
    if broken_pipe:
        return _stdout_closed()
    if error.errno not in (errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EBADF):
        raise error
    return _output_failed(error)


def _output_failed(error: OSError) -> int:
    """Writing our output failed (a full disk or quota behind `> file`, an I/O error): one sentence, exit 1."""
    hint = (
        "give it an open stdout (a file, a pipe, or /dev/null to discard the output)."
        if error.errno == errno.EBADF
        else "free some space (or write elsewhere) and run the command again."
    )
    _print_error(FactoryError(f"could not write the output: {error.strerror or error}.", hint))
    silence_stdout()  # the interpreter's last flush would fail the same way
    return int(ExitCode.FAILURE)


def _stdout_closed() -> int:
    """Our stdout's reader went away (`| head -1`): end quietly with SIGPIPE's status, like other Unix tools.

    stdout is pointed at /dev/null first, so the interpreter's last flush has nowhere to fail.
    """
    silence_stdout()
    return int(ExitCode.BROKEN_PIPE)


def main() -> None:
    """Console-script entry point: a bug is one sentence and a hint too (its traceback only with --debug)."""
    decided = ignore_interrupts_at_the_very_end()
    stand_in_for_closed_streams()
    output_errors = _cli_module("arguments").register_output_errors()  # stdout: argv's bytes back as they came
    lose_messages_from_now()  # a full or closed stderr loses the messages, to the last flush: never exit 120
    for stream, errors in ((sys.stdout, output_errors), (sys.stderr, "replace")):  # never fatal: `?` instead
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors=errors)  # type: ignore[union-attr]
    try:
        status = run()  # the process's command line: a stop from its outcome on changes nothing, to its end
    except Exception as exc:
        if _debug_requested(sys.argv[1:]):
            raise
        sys.stderr.write(f"factoryctl: unexpected error: {type(exc).__name__}: {exc}\n")
        sys.stderr.write("hint: rerun with --debug for the traceback, and report it.\n")
        status = int(ExitCode.FAILURE)
    exit_now_on_interrupt(status)
    decided.append(status)
    sys.exit(status)
