"""`factoryctl exec TARGET [--] CMD...`: run one command on many nodes, like `clush -b` / `pdsh | dshbak -c`.

exec's options go before the command's first word; from it on every word is the command's (cli/exec_args.py).
The command is argv, quoted for the node's login shell (sh, bash, zsh or fish: transport/quoting.py), so it reaches
the node as typed. A bounded pool (`--fanout`) runs it; one slow or dead node never holds up the others' commands or
output. Standard input, when it is not a terminal, is streamed to every node's command while it runs, then EOF
(transport/stdin_stream.py); the shared input moves no further than 8 MiB ahead of the slowest running command.
Identical outputs are gathered under one folded node set (`n[01-64] (64)`); `--lines` instead prints each line as
it arrives, prefixed with its node (`LinePrinter`, cli/line_printer.py). Output that arrived before a node failed
is shown too. Exit status: 4 if a node was unreachable, else 124 if one timed out, else the highest remote exit code
(1 if that is 0 but output was dropped past the limits of what exec keeps).

Ctrl-C and SIGTERM interrupt the commands still running (SIGINT, then SIGHUP, to the command's process group) and
start no more (a command not started yet on its connection is refused); exec then waits briefly (STOP_GRACE_S,
less if the signal comes again, once the interrupts on their way have arrived) and still prints its result:
what finished, what it stopped (error `interrupted`), what it never started. It exits 130 (Ctrl-C) or 143. The
SIGTERM handler is installed only while the command runs, never at import, and the previous one is put back.
"""

from __future__ import annotations

import errno
import io
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import OutputFormat
from factoryctl.cli.signals import Terminated, signals_set, sigterm_interrupts, stopped_status
from factoryctl.errors import ExitCode, NodeError, UsageError, most_severe

if TYPE_CHECKING:
    from factoryctl.cli.line_printer import LinePrinter
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.signal_wake import Wake
    from factoryctl.transport.base import CappedOutput, KeptOutput, OutputBudget
    from factoryctl.transport.fanout import Pending
    from factoryctl.transport.stdin_stream import StdinBroadcast

#: How long an interrupted exec waits for its commands to end (after SIGINT, then SIGHUP) before it reports.
STOP_GRACE_S = 2.0


def stdin_source() -> StdinBroadcast | None:
    """What to stream to every node's command: None when stdin is a terminal, absent or closed, else a broadcast.

    Streamed from the file descriptor as the commands run (nothing is read before a node's turn); a stdin without
    one (an in-memory stream) is complete already and is taken whole.
    """
    from factoryctl.transport.stdin_stream import StdinBroadcast

    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            return None
    except ValueError:  # closed
        return None
    try:
        fd = stream.fileno()
        os.fstat(fd)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        fd = -1
    if fd >= 0:
        return StdinBroadcast(fd)
    try:
        data = stream.read()
    except (OSError, ValueError):
        return None
    return StdinBroadcast.from_bytes(data.encode() if isinstance(data, str) else bytes(data))


class ExecRun:
    """One exec's commands on every node, through a bounded fan-out (`fanout`), each streamed the same `stdin`.

    `wait` gives per node either `{node, exit_code, stdout, stderr, duration_s}` or its NodeError (a `CommandCut`,
    with what arrived, when it timed out or lost its connection); what the nodes keep of their output draws on one
    `budget` (transport/base.py); `printer` prints lines as they arrive. Ctrl-C (and SIGTERM, under
    `sigterm_interrupts`, and the printer's reader going away: Cancelled) interrupts the commands still running
    (SIGINT, then SIGHUP) and starts no more before it goes on; `stopped` then tells how far each node got.
    """

    def __init__(
        self,
        config: FactoryConfig,
        specs: Sequence[NodeSpec],
        argv: list[str],
        timeout: float,
        fanout: int,
        stdin: StdinBroadcast | None = None,
        printer: LinePrinter | None = None,
        budget: OutputBudget | None = None,
    ) -> None:
        from factoryctl.transport.fanout import FanOut, RunningCommands

        self._config, self._argv, self._timeout = config, argv, timeout
        #: The command's words, as given.
        self.argv = argv
        self._stdin, self._printer, self._budget = stdin, printer, budget
        self._feeds = {spec.name: stdin.feed(spec.name) for spec in specs} if stdin is not None else {}
        self._live = RunningCommands()
        self._kept: dict[str, KeptOutput] = {}  # the nodes whose command runs: what it keeps (`_still_running`)
        self._logins: dict[str, str] = {}  # the user each node's command runs as (`_still_running`'s hint)
        self._pool = FanOut(specs, self._one, fanout, printer.broken if printer is not None else None)

    def _one(self, spec: NodeSpec) -> dict[str, Any]:
        from factoryctl.cli.exec_output import login_user
        from factoryctl.telemetry.poll import open_transport
        from factoryctl.transport.base import KeptOutput

        started = time.monotonic()
        feed = self._feeds.get(spec.name)
        connect_timeout = float(self._config.settings.ssh.connect_timeout_s)
        try:
            if feed is not None:
                feed.start()
            kept = self._kept[spec.name] = KeptOutput(self._budget)
            opened = open_transport(spec, self._config, max(connect_timeout, self._timeout))
            self._logins[spec.name] = login_user(spec, opened)
            transport = self._live.admit(spec.name, opened, kept)
            lines = None if self._printer is None else self._printer.sink(spec.name)
            try:
                with kept.collecting():
                    result = transport.run(self._argv, self._timeout, feed, on_output=lines)
            finally:
                self._live.leave(spec.name, transport)
        finally:
            self._kept.pop(spec.name, None)
            if feed is not None:
                feed.close()
            if self._printer is not None:
                self._printer.finish(spec.name)
        return {
            "node": spec.name,
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "duration_s": time.monotonic() - started,
            # output dropped past a limit: exec fails (`exit_status`); never under --lines, which printed it all
            "truncated": self._printer is None and output_dropped(kept),
            "held_open": result.held_open,  # its later output not read (`report_held_open`)
        }

    def wait(self) -> list[tuple[NodeSpec, dict[str, Any] | NodeError]]:
        """Every node's outcome; reading stdin stops once every node is done (or exec is interrupted)."""
        from factoryctl.transport.fanout import Cancelled

        try:
            return self._pool.run()
        except (KeyboardInterrupt, Terminated, Cancelled):
            self._live.interrupt_all()
            raise
        finally:
            if self._stdin is not None:
                self._stdin.stop()

    def report_failures_so_far(self) -> None:
        """On stderr, what failed before `wait` was cancelled: nodes unreachable, commands that exited non-zero.

        The interrupts on their way are waited for first (within STOP_GRACE_S): exec ended before a root login's
        kill channel had opened, and the commands ran on. A command that interrupt ended is no failure to say.
        """
        from factoryctl.cli.exec_output import report_failures
        from factoryctl.signal_wake import Wake

        cancelled = Wake()
        cancelled.set()  # wait only for the nodes whose interrupt is on its way, not for the rest
        settled = self._pool.settle(STOP_GRACE_S, cancelled, self._live.stopping)
        ours = self._live.interrupted
        items = [s for n, s in settled if isinstance(s, dict) and not (n.name in ours and _by_signal(s))]
        errors = [state for _, state in settled if isinstance(state, NodeError) and state.kind != "interrupted"]
        report_failures(items, errors)

    def stopped(self, grace: float, stop: Wake) -> list[tuple[NodeSpec, dict[str, Any] | NodeError]]:
        """After `wait` was interrupted: the outcomes once the interrupted commands ended (at most `grace` s).

        A node that finished before keeps its result; one whose command was interrupted is an `interrupted`
        CommandCut with what it printed; one never started (or still connecting) is `interrupted` too. SIGINT or
        SIGTERM (`stop`) ends the wait once the interrupts on their way have arrived (a root login's is sent over
        a channel of its own: transport/stops_underway.py): a second Ctrl-C never waits for a command that ignores
        the first.
        """
        from factoryctl.transport.fanout import Pending

        with signals_set(stop):
            self._live.interrupt_all()  # again, should a second signal have cut the first call short
            # even after a second signal, the nodes whose interrupt is on its way (a root login's kill: its own
            # channel) are waited for: their commands were said to be still running, ended a moment later
            settled = self._pool.settle(grace, stop, self._live.stopping)
        running = [s.name for s, state in settled if isinstance(state, Pending) and s.name in self._live.interrupted]
        return [(spec, self._outcome(spec.name, state, len(running) == 1)) for spec, state in settled]

    def _outcome(
        self, name: str, state: dict[str, Any] | NodeError | Pending, alone: bool
    ) -> dict[str, Any] | NodeError:
        """One node's outcome after the interrupt (see `stopped`); `alone`: the only one still running."""
        from factoryctl.transport.base import CommandCut
        from factoryctl.transport.fanout import NOT_STARTED_MESSAGE, Pending

        if name not in self._live.interrupted:  # done before, or never ran its command (maybe still connecting)
            return NodeError(name, "interrupted", NOT_STARTED_MESSAGE) if isinstance(state, Pending) else state
        if isinstance(state, NodeError) and not isinstance(state, CommandCut):
            return state  # it failed its own way
        if isinstance(state, dict) and not _ended_by_signal(int(state["exit_code"])):
            return state  # it finished as usual in the meantime (it ignored the signal, or was ending anyway)
        if isinstance(state, Pending):  # still running: what it printed so far
            if self._printer is not None:
                self._printer.finish(name)
            stdout, stderr = self._live.output(name)
            return CommandCut(self._still_running(name, alone), stdout, stderr)
        stdout, stderr = (
            (state.stdout, state.stderr) if isinstance(state, CommandCut) else (state["stdout"], state["stderr"])
        )
        return CommandCut(NodeError(name, "interrupted", "command interrupted before it finished"), stdout, stderr)

    def _still_running(self, name: str, alone: bool) -> NodeError:
        """The error of a node whose interrupted command had not ended when exec stopped waiting.

        When it is the only one and its process group is known (an SSH node's command reported it,
        transport/ssh_channel.py `CommandStderr`; a local one leads its own), the error names it, and how to stop
        it, as a timeout's does. Else its words are every such node's, one line for all of them (not one per node,
        each with its own group, at 1,000 nodes), and the hint says how to find the command by its command line
        among its login user's processes (`find_command_hint`): also where the group is unknown (exec stopped
        waiting before the command reported it).
        """
        from factoryctl.transport.ssh_channel import stop_group_hint

        kept = self._kept.get(name)
        streams = [] if kept is None else list(kept.streams)
        groups = [s.group for s in streams if s.group is not None]
        message = "command interrupted, but still running when exec stopped waiting for it"
        if groups and alone:
            group = groups[0]
            return NodeError(
                name, "interrupted", f"{message} (process group {group})", f"{stop_group_hint(name, group)}."
            )
        if not groups:
            message = (
                "command interrupted, but it may still be running: exec stopped waiting before it reported its"
                " process group"
            )
        from factoryctl.cli.exec_output import find_command_hint

        return NodeError(name, "interrupted", message, find_command_hint(name, self._argv, self._logins.get(name)))


#: Exit statuses of a command ended by the signals exec sends (SIGINT, SIGHUP) or by SIGTERM/SIGKILL: 128 + the
#: signal from a shell and from the local transport (as a shell reports it), 255 from the SSH transport (as
#: OpenSSH's client does for a command that died of a signal, or whose channel exec closed). Never negative.
_SIGNAL_STATUSES = frozenset({255, *(128 + s for s in (signal.SIGHUP, signal.SIGINT, signal.SIGKILL, signal.SIGTERM))})


def _ended_by_signal(status: int) -> bool:
    return status in _SIGNAL_STATUSES


def _by_signal(item: dict[str, Any]) -> bool:
    return _ended_by_signal(int(item["exit_code"]))


def exit_status(items: Sequence[dict[str, Any]], errors: Sequence[NodeError]) -> int:
    """4 if a node was unreachable, else 124 if one timed out, else the highest remote exit code.

    1 if that is 0 but output was dropped past a limit (`truncated`): exec's own failure, which a script's
    `exec all -- cat f > out` must be able to tell from a complete result.
    """
    worst = most_severe([e.exit_code for e in errors])
    if worst in (ExitCode.CONNECTION, ExitCode.TIMEOUT):
        return int(worst)
    highest = max([int(worst), *(int(i["exit_code"]) for i in items)])
    if highest == 0 and any(i.get("truncated") for i in items):
        return int(ExitCode.FAILURE)
    return highest


def output_dropped(kept: KeptOutput) -> bool:
    """Whether the command's own stdout or stderr (the first stream of each: `KeptOutput.so_far`) dropped bytes."""
    first: dict[int, CappedOutput] = {}
    for stream in list(kept.streams):
        first.setdefault(stream.number, stream)
    return any(stream.dropped or stream.over_budget for stream in first.values())


def exec_command(
    ctx: typer.Context,
    target: str = context.REQUIRED_TARGET_ARG,
    command: list[str] = typer.Argument(
        ...,
        help="The command and its arguments: every word from its first one on is the command's (`--` before it is optional).",
        show_default=False,
    ),
    fanout: int = FANOUT_OPTION,
    timeout: float = context.timeout_option(
        60.0,
        "--timeout",
        "-t",
        help="Seconds the command may run on each node, 0.1-86400 (connecting: ssh.connect_timeout_s).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    lines: bool = typer.Option(
        False,
        "--lines",
        "-L",
        help="Print each line as it arrives, prefixed with its node (like pdsh), instead of gathering at the end.",
    ),
    no_stdin: bool = typer.Option(
        False,
        "--no-stdin",
        "-n",
        help="Send no standard input; the command gets EOF at once (like ssh -n). Use it in `while read` loops.",
    ),
) -> None:
    """Run CMD on every node of TARGET; identical outputs are gathered (`n[01-64] (64)`).

    Example: `factoryctl exec @rack-a -- nvidia-smi -L`. exec's options go before CMD; every word from CMD's first
    on is the command's, `--` included (`factoryctl exec all -t 5 grep -n foo f`), so the `--` is optional. Standard input that is not a terminal is streamed to every
    node's command while it runs, then EOF, like ssh: `factoryctl exec all -- tee /tmp/x < file`. Like ssh, exec
    reads (and so uses up) its stdin: inside `while read n; do ...; done < nodes.txt` add -n/--no-stdin, or the
    first exec swallows the rest of the list. Exit status: 4 if a node was unreachable, 124 if one timed out (its
    command is killed on the node, root logins included, and the error says if it may still run), else the highest
    remote exit code, or 1 if that is 0 but output past the limits of what exec keeps was dropped (use --lines);
    what a node printed before it timed out or lost its connection is shown too.
    Ctrl-C (exit 130), SIGTERM (143) and SIGHUP (129) interrupt the commands still running and start no more; the result is
    still printed, those nodes' errors `interrupted` (with the output so far).
    """
    if not command:
        raise UsageError("no command given.", "put the command after `--`: factoryctl exec all -- uptime")
    structured = output in (OutputFormat.json, OutputFormat.yaml, OutputFormat.csv)
    printer = line_printer(lines, output if structured else None)
    config = context.load(ctx)
    specs = config.resolve_target(target)
    _refuse_too_long_for_ssh(specs, command)
    stdin = None if no_stdin else stdin_source()
    run = ExecRun(config, specs, list(command), timeout, fanout, stdin, printer, kept_output_budget(printer))
    raise typer.Exit(report_run(run, stdin, printer, output if structured else None, no_header, target))


def _refuse_too_long_for_ssh(specs: Sequence[NodeSpec], command: Sequence[str]) -> None:
    """A command line too long for an SSH server is a usage error before any node is connected to (SSH nodes only)."""
    if any(spec.transport == "ssh" for spec in specs):
        from factoryctl.transport.quoting import check_argv

        check_argv(list(command), login_output=True)


def line_printer(lines: bool, structured: OutputFormat | None) -> LinePrinter | None:
    """`--lines`' printer, if asked; a usage error with a document format, which is printed at the end, whole."""
    if lines and structured is not None:
        raise UsageError(
            f"--lines cannot be used with -o {structured.value}.",
            f"--lines prints each line as it arrives; -o {structured.value} prints one result at the end, when "
            "every command is over: give one of them.",
        )
    from factoryctl.cli.line_printer import LinePrinter

    return LinePrinter() if lines else None


def kept_output_budget(printer: LinePrinter | None) -> OutputBudget:
    """What the nodes' output may keep, together: nothing under `--lines` (it is printed as it arrives, not kept)."""
    from factoryctl.transport.base import OutputBudget, exec_output_budget

    return OutputBudget(0) if printer is not None else exec_output_budget()


def report_run(
    run: ExecRun,
    stdin: StdinBroadcast | None,
    printer: LinePrinter | None,
    structured: OutputFormat | None,
    no_header: bool,
    target: str = "all",
) -> int:
    """Wait for `run`, print its result, and return exec's exit status (130 or 143 if it was interrupted).

    `target`: the nodes as given, for a hint's command line.
    """
    from factoryctl.cli.exec_output import print_outcomes, report_failures, report_needs_shell

    outcomes, interrupted = run_interruptible(run)
    items = [o for _, o in outcomes if not isinstance(o, NodeError)]
    errors = [o for _, o in outcomes if isinstance(o, NodeError)]
    if printer is not None and printer.broken.is_set():  # it went away as the last commands ended
        report_failures(items, errors)  # the unreachable nodes are still said, as without --lines
        raise stdout_gone(printer)
    if stdin is not None and stdin.error:
        sys.stderr.write(f"factoryctl: {stdin.error}\n")
    print_outcomes(items, errors, structured, no_header, lines=printer is not None)
    if interrupted is not None:
        from factoryctl.cli.signals import report_stopped

        report_stopped(interrupted)
        return interrupted
    report_needs_shell(target, run.argv, items)
    return exit_status(items, errors)


def run_interruptible(run: ExecRun) -> tuple[list[tuple[NodeSpec, dict[str, Any] | NodeError]], int | None]:
    """The outcomes, and 130 (Ctrl-C), 143 (SIGTERM) or 129 (SIGHUP) if exec was interrupted: after its commands stopped.

    A second signal while they stop ends the wait for them; one while the result is printed ends exec at once.
    """
    from factoryctl.transport.fanout import Cancelled

    with sigterm_interrupts(later_stops_wake=True) as again:  # a second stop only shortens the wait (`stopped`)
        try:
            return run.wait(), None
        except (KeyboardInterrupt, Terminated) as stopped:
            code = stopped_status(stopped)
        except Cancelled:  # only --lines' printer cancels: its stdout failed (its reader went away, a full disk)
            run.report_failures_so_far()  # an unreachable node is said even so
            raise stdout_gone(run._printer) from None  # the error boundary: 141 quietly, as `| head` expects, or 1
        return run.stopped(STOP_GRACE_S, again), code  # in the block: after it, a Ctrl-C raised past the nodes


def stdout_gone(printer: LinePrinter | None) -> OSError:
    """The error of `--lines`' stdout that failed: the write's own (ENOSPC, EBADF: exit 1, said), else EPIPE (141)."""
    failure = printer.failure if printer is not None else None
    return failure if failure is not None else BrokenPipeError(errno.EPIPE, "stdout's reader went away")


def register(app: typer.Typer) -> None:
    """Add `exec` to the root app."""
    from factoryctl.cli.exec_args import ExecCommand

    app.command(
        "exec",
        cls=ExecCommand,
        help=exec_command.__doc__,
        short_help="Run a command on every node; identical outputs gathered.",
    )(exec_command)
