"""`factoryctl exec TARGET -- CMD...`: run one command on many nodes, like `clush -b` / `pdsh | dshbak -c`.

The command is argv, quoted with `shlex.join` for the node's shell, so quotes, `;`, `$()` and newlines reach the
node as typed. A bounded pool (`--fanout`) runs it; one slow or dead node never blocks the others. Standard input,
when it is not a terminal, is read once (at most 64 MiB) and sent to every node's command, then EOF, like pdsh and
ssh. Identical outputs are gathered under one folded node set (`n[01-64] (64)`). Exit status: 4 if a node was
unreachable, else 124 if one timed out, else the highest remote exit code.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.render import NO_HEADER_OPTION, OUTPUT_OPTION, OutputFormat, dump_json, dump_yaml, emit
from factoryctl.errors import ExitCode, NodeError, UsageError, most_severe

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec

DEFAULT_FANOUT = 64
#: The most standard input `exec` reads (held in memory once, sent to every node).
MAX_STDIN_BYTES = 64 << 20
RULE = "-" * 15


def fold(names: Sequence[str]) -> str:
    """ClusterShell's folded node set (`n[01-03,07]`)."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(list(names)))


def read_stdin(limit: int | None = None) -> bytes | None:
    """What to send to every node's command: None when stdin is a terminal (or absent), else all of it, bounded."""
    limit = MAX_STDIN_BYTES if limit is None else limit
    stream = sys.stdin
    try:
        if stream is None or stream.isatty():
            return None
        buffer = getattr(stream, "buffer", None)
        data = buffer.read(limit + 1) if buffer is not None else stream.read(limit + 1).encode()
    except (OSError, ValueError):  # stdin closed or unreadable: there is nothing to send
        return None
    if len(data) > limit:
        raise UsageError(
            f"standard input is larger than {limit >> 20} MiB, the most `exec` sends to every node.",
            "copy big files with scp or rsync and pass their path; add -n/--no-stdin if the command reads no input.",
        )
    return bytes(data)


def run_everywhere(
    config: FactoryConfig,
    specs: Sequence[NodeSpec],
    argv: list[str],
    timeout: float,
    fanout: int,
    stdin: bytes | None = None,
) -> list[tuple[NodeSpec, dict[str, Any] | NodeError]]:
    """Run argv on every node, each fed the same `stdin` (then EOF).

    Per node either `{node, exit_code, stdout, stderr, duration_s}` or its NodeError.
    """
    from factoryctl.telemetry.poll import open_transport
    from factoryctl.transport.fanout import fan_out

    connect_timeout = float(config.settings.ssh.connect_timeout_s)

    def one(spec: NodeSpec) -> dict[str, Any]:
        started = time.monotonic()
        transport = open_transport(spec, config, max(connect_timeout, timeout))
        try:
            result = transport.run(argv, timeout, stdin)
        finally:
            transport.close()
        return {
            "node": spec.name,
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "duration_s": time.monotonic() - started,
        }

    return fan_out(specs, one, fanout)


def exit_status(items: Sequence[dict[str, Any]], errors: Sequence[NodeError]) -> int:
    """4 if a node was unreachable, else 124 if one timed out, else the highest remote exit code."""
    worst = most_severe([e.exit_code for e in errors])
    if worst in (ExitCode.CONNECTION, ExitCode.TIMEOUT):
        return int(worst)
    return max([int(worst), *(int(i["exit_code"]) for i in items)])


def gather(items: Sequence[dict[str, Any]], key: str) -> list[tuple[list[str], bytes]]:
    """Nodes grouped by identical output, in order of first appearance."""
    groups: dict[bytes, list[str]] = {}
    for item in items:
        groups.setdefault(item[key], []).append(item["node"])
    return [(nodes, output) for output, nodes in groups.items()]


def _write_bytes(data: bytes) -> None:
    sys.stdout.flush()
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is not None:
        buffer.write(data)
        buffer.flush()
    else:
        sys.stdout.write(data.decode("utf-8", "replace"))


def render_gathered(items: Sequence[dict[str, Any]], no_header: bool) -> None:
    """Gather like `clush -b`: one block per distinct stdout; stderr gathered on stderr; non-zero exits reported."""
    for nodes, output in gather(items, "stdout"):
        if not output:
            continue
        if not no_header:
            emit(f"{RULE}\n{fold(nodes)} ({len(nodes)})\n{RULE}\n")
        _write_bytes(output if output.endswith(b"\n") else output + b"\n")
    for nodes, output in gather(items, "stderr"):
        for line in output.decode("utf-8", "replace").splitlines():
            sys.stderr.write(f"{fold(nodes)}: {line}\n")
    by_code: dict[int, list[str]] = {}
    for item in items:
        if item["exit_code"] != 0:
            by_code.setdefault(int(item["exit_code"]), []).append(item["node"])
    for code, nodes in sorted(by_code.items()):
        sys.stderr.write(f"factoryctl: {fold(nodes)}: exited with exit code {code}\n")


def render_lines(items: Sequence[dict[str, Any]]) -> None:
    """Prefix like pdsh: every line prefixed with its node."""
    for item in items:
        for line in item["stdout"].decode("utf-8", "replace").splitlines():
            emit(f"{item['node']}: {line}\n")
        for line in item["stderr"].decode("utf-8", "replace").splitlines():
            sys.stderr.write(f"{item['node']}: {line}\n")


def _json_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": item["node"],
        "exit_code": item["exit_code"],
        "stdout": item["stdout"].decode("utf-8", "replace"),
        "stderr": item["stderr"].decode("utf-8", "replace"),
        "duration_s": item["duration_s"],
    }


def exec_command(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="Node set, @group or all.", autocompletion=context.complete_target),
    command: list[str] = typer.Argument(..., help="The command and its arguments (after `--`).", show_default=False),
    fanout: int = typer.Option(DEFAULT_FANOUT, "--fanout", "-f", min=1, help="Nodes worked on at once."),
    timeout: float = typer.Option(
        60.0,
        "--timeout",
        "-t",
        min=0.1,
        help="Seconds the command may run on each node (connecting: ssh.connect_timeout_s).",
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    lines: bool = typer.Option(False, "--lines", "-L", help="Prefix every line with its node instead of gathering."),
    no_stdin: bool = typer.Option(
        False, "--no-stdin", "-n", help="Do not read standard input; the command gets none (like ssh -n)."
    ),
) -> None:
    """Run CMD on every node of TARGET; identical outputs are gathered (`n[01-64] (64)`).

    Example: `factoryctl exec @rack-a -- nvidia-smi -L`. Standard input that is not a terminal (a pipe or a file, at
    most 64 MiB) is sent to every node's command: `factoryctl exec all -- tee /tmp/x < file`. Exit status: 4 if a
    node was unreachable, 124 if one timed out, else the highest remote exit code.
    """
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors

    if not command:
        raise UsageError("no command given.", "put the command after `--`: factoryctl exec all -- uptime")
    config = context.load(ctx)
    specs = config.resolve_target(target)
    stdin = None if no_stdin else read_stdin()
    outcomes = run_everywhere(config, specs, list(command), timeout, fanout, stdin)
    items = [o for _, o in outcomes if not isinstance(o, NodeError)]
    errors = [o for _, o in outcomes if isinstance(o, NodeError)]
    if output in (OutputFormat.json, OutputFormat.yaml):
        document = {
            "schema_version": 1,
            "items": [_json_item(i) for i in items],
            "errors": [e.as_json() for e in errors],
        }
        emit(dump_json(document) if output is OutputFormat.json else dump_yaml(document))
    elif lines:
        render_lines(items)
    else:
        render_gathered(items, no_header)
    report_node_errors((e.as_json() for e in errors), ERROR_HINTS)
    raise typer.Exit(exit_status(items, errors))


def register(app: typer.Typer) -> None:
    """Add `exec` to the root app."""
    app.command("exec", help=exec_command.__doc__)(exec_command)
