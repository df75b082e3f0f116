"""How `exec` prints its result: gathered outputs, a JSON, YAML or CSV document, and non-zero exits on stderr.

Kept apart from the command (cli/exec.py), which runs the commands and handles interrupts: the output of thousands
of nodes can be gigabytes, so every writer here prints in pieces (PIECE characters, an entry or a row at a time) and
never copies a node's output whole (docs/ssh.md, Output).
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from factoryctl.cli.render import OutputFormat, dump_yaml, emit, fold, write_bytes_whole
from factoryctl.errors import NodeError

if TYPE_CHECKING:
    import json

    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.base import NodeTransport

#: The rule above and below each gathered block's node set, as clush -b draws it.
RULE = "-" * 15
#: Large outputs are printed in pieces of about this many characters: never decoded, encoded or copied whole.
PIECE = 1 << 20


def gather(items: Sequence[dict[str, Any]], key: str) -> list[tuple[list[str], bytes]]:
    """Nodes grouped by identical output, in order of first appearance."""
    groups: dict[bytes, list[str]] = {}
    for item in items:
        groups.setdefault(item[key], []).append(item["node"])
    return [(nodes, output) for output, nodes in groups.items()]


def _write_block(data: bytes) -> None:
    """`data` on stdout, ended by a newline: written apart from it, so a large output is never copied to print it."""
    sys.stdout.flush()
    ending = b"" if data.endswith(b"\n") else b"\n"
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(data.decode("utf-8", "replace") + ending.decode())
        return
    write_bytes_whole(buffer, data)  # a large output's reader gone mid-write: BrokenPipeError, exit 141
    if ending:
        write_bytes_whole(buffer, ending)


def _write_pieces(write: Callable[[str], object], text: str) -> None:
    """`text` through `write` in pieces of PIECE characters: a large one is never encoded (copied) whole."""
    for start in range(0, len(text), PIECE):
        write(text[start : start + PIECE])


def _write_prefixed(prefix: str, data: bytes) -> None:
    """`prefix: line` on stderr for each line of `data`, split at newlines only and written as bytes, as `--lines` does.

    A carriage return (progress bars), a control character or a byte that is not UTF-8 stays as the command wrote it
    (docs/ssh.md). A stderr without a binary buffer (an in-process capture) gets each line decoded, invalid bytes
    replaced. Never copied whole: a long line is written in pieces. A stderr that takes no more loses the rest.
    """
    buffer = getattr(sys.stderr, "buffer", None)
    if buffer is None:
        _write_prefixed_text(prefix, data)
        return
    head = f"{prefix}: ".encode("utf-8", "replace")
    view = memoryview(data)
    try:
        sys.stderr.flush()  # what was written as text goes first
        for start, stop in _line_bounds(data):
            buffer.write(head)
            for piece in range(start, stop, PIECE):
                buffer.write(view[piece : min(stop, piece + PIECE)])
            buffer.write(b"\n")
        buffer.flush()
    except OSError:  # a full disk, a reader gone: the flush below hands it to LosesMessages (cli/stderr_lost.py)
        with contextlib.suppress(OSError):
            sys.stderr.flush()


def _write_prefixed_text(prefix: str, data: bytes) -> None:
    """`_write_prefixed` on a text-only stderr: a line at a time decoded (a newline is never inside UTF-8)."""
    view = memoryview(data)
    for start, stop in _line_bounds(data):
        sys.stderr.write(f"{prefix}: ")
        _write_pieces(sys.stderr.write, str(view[start:stop], "utf-8", "replace"))
        sys.stderr.write("\n")


def _line_bounds(data: bytes) -> Iterator[tuple[int, int]]:
    """(start, stop) of each line of `data`, split at newline bytes only; a last line without one counts too."""
    start = 0
    while start < len(data):
        newline = data.find(b"\n", start)
        stop = len(data) if newline < 0 else newline
        yield start, stop
        start = stop + 1


def render_gathered(items: Sequence[dict[str, Any]], no_header: bool) -> None:
    """Gather like `clush -b`: one block per distinct stdout; stderr gathered on stderr."""
    for nodes, output in gather(items, "stdout"):
        if not output:
            continue
        if not no_header:
            emit(f"{RULE}\n{fold(nodes)} ({len(nodes)})\n{RULE}\n")
        _write_block(output)
    for nodes, output in gather(items, "stderr"):
        _write_prefixed(fold(nodes), output)


def node_set(nodes: Sequence[str]) -> str:
    """Nodes as the failure lines on stderr name them: `n03`, or `n[01-02,06] (3)` (`render.report_node_errors`)."""
    return fold(nodes) if len(nodes) == 1 else f"{fold(nodes)} ({len(nodes)})"


def report_exit_codes(items: Sequence[dict[str, Any]]) -> None:
    """On stderr, the nodes whose command exited non-zero, folded per exit code (like pdsh's `exited with`)."""
    by_code: dict[int, list[str]] = {}
    for item in items:
        if item["exit_code"] not in (0, None):  # None: cut short, reported with the node errors
            by_code.setdefault(int(item["exit_code"]), []).append(item["node"])
    for code, nodes in sorted(by_code.items()):
        sys.stderr.write(f"factoryctl: {node_set(nodes)}: exited with exit code {code}\n")


#: What to do about output dropped past the limits (`report_truncated`).
TRUNCATED_HINT = (
    "use --lines, which prints the output as it arrives and keeps none of it in memory, or have the command write "
    "its output to a file on the node."
)


def report_truncated(items: Sequence[dict[str, Any]]) -> None:
    """On stderr, the nodes whose output was cut (dropped past a limit: exec exits 1 for it), and what to do."""
    nodes = [item["node"] for item in items if item.get("truncated")]
    if nodes:
        sys.stderr.write(f"factoryctl: {node_set(nodes)}: output truncated: more than exec keeps was dropped\n")
        sys.stderr.write(f"hint: {TRUNCATED_HINT}\n")


def report_held_open(items: Sequence[dict[str, Any]]) -> None:
    """On stderr, the nodes whose command exited while a process it started held its output open (`nohup job &`).

    The transport stopped reading that output shortly after the exit and left the process running, and said so in
    the command's result (`held_open`, transport/held_open.py): what it prints later is not shown. Said once per node
    set.
    """
    from factoryctl.transport.held_open import HELD_OPEN_NOTE

    nodes = [item["node"] for item in items if item.get("held_open")]
    if nodes:
        sys.stderr.write(f"factoryctl: {node_set(nodes)}: {HELD_OPEN_NOTE}\n")


def cut_short(errors: Sequence[NodeError]) -> list[dict[str, Any]]:
    """What the nodes that timed out or lost their connection printed before (gathered with the others' output)."""
    from factoryctl.transport.base import CommandCut

    return [
        {"node": e.node, "exit_code": None, "stdout": e.stdout, "stderr": e.stderr}
        for e in errors
        if isinstance(e, CommandCut) and (e.stdout or e.stderr)
    ]


def _json_error(error: NodeError) -> dict[str, Any]:
    """A listing's `errors` entry; a command cut short also carries the `stdout` and `stderr` that arrived."""
    from factoryctl.transport.base import CommandCut

    entry: dict[str, Any] = error.as_json()
    if isinstance(error, CommandCut):
        entry["stdout"] = error.stdout.decode("utf-8", "replace")
        entry["stderr"] = error.stderr.decode("utf-8", "replace")
    return entry


#: The keys of an exec item (`_json_item`), in order: the CSV header when no node ran the command.
EXEC_FIELDS = ("node", "exit_code", "stdout", "stderr", "duration_s")


def _json_item(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "node": item["node"],
        "exit_code": item["exit_code"],
        "stdout": item["stdout"].decode("utf-8", "replace"),
        "stderr": item["stderr"].decode("utf-8", "replace"),
        "duration_s": item["duration_s"],
    }


def emit_json(items: Sequence[dict[str, Any]], errors: Sequence[NodeError]) -> None:
    """`-o json`: the document `dump_json` would print, decoded and encoded an entry at a time (never copied whole)."""
    import json

    from factoryctl.cli.render import stdout_takes_unicode

    encoder = json.JSONEncoder(indent=2, ensure_ascii=not stdout_takes_unicode(), allow_nan=False)
    emit('{\n  "schema_version": 1,\n  "items": ')
    _json_array(encoder, map(_json_item, items))
    emit(',\n  "errors": ')
    _json_array(encoder, map(_json_error, errors))
    emit("\n}\n")


def _json_array(encoder: json.JSONEncoder, entries: Iterable[dict[str, Any]]) -> None:
    """A JSON array of `entries` on stdout, indented as a member of the document, each encoded when its turn comes."""
    opening = "[\n    "
    for entry in entries:
        emit(opening)
        opening = ",\n    "
        for chunk in encoder.iterencode(entry):  # strings are escaped: a newline is the encoder's own
            _write_pieces(emit, chunk.replace("\n", "\n    "))
    emit("[]" if opening.startswith("[") else "\n  ]")


def emit_csv(items: Sequence[dict[str, Any]], header: bool) -> None:
    """`-o csv`: a row per node that ran the command, each rendered when its turn comes."""
    from factoryctl.cli.render import render_csv

    if not items:
        emit(render_csv([], header, EXEC_FIELDS))
    for number, item in enumerate(items):
        emit(render_csv([_json_item(item)], header and number == 0, EXEC_FIELDS))


def print_outcomes(
    items: Sequence[dict[str, Any]],
    errors: Sequence[NodeError],
    structured: OutputFormat | None,
    no_header: bool,
    lines: bool,
) -> None:
    """The result: a document or CSV rows (`structured`), else gathered output (after `--lines`: nothing more).

    The nodes that exited non-zero, and the node errors, are summarised on stderr in every case: also when stdout's
    reader went away (`| head -2`, BrokenPipeError: exit 141), or the unreachable nodes went unsaid.
    """
    try:
        if structured is OutputFormat.csv:  # one row per node that ran the command; failures on stderr, as for tables
            emit_csv(items, not no_header)
        elif structured is OutputFormat.json:
            emit_json(items, errors)
        elif structured is not None:
            document = {
                "schema_version": 1,
                "items": [_json_item(i) for i in items],
                "errors": [_json_error(e) for e in errors],
            }
            emit(dump_yaml(document))
        elif not lines:
            render_gathered([*items, *cut_short(errors)], no_header)
    except BrokenPipeError:
        report_failures(items, errors)
        raise
    report_failures(items, errors)


def report_failures(items: Sequence[dict[str, Any]], errors: Sequence[NodeError]) -> None:
    """On stderr: the nodes that exited non-zero, whose output was cut or left held open, and the node errors."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors

    report_exit_codes(items)  # in every format: a script's exit 2 or 4 may be the command's own
    report_truncated(items)
    report_held_open(items)
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)


#: A character that means something to a shell, or whitespace: a word holding one was likely meant for a shell.
_SHELL_WORD = re.compile(r"[\s;|&<>()$`*?\[\]{}~\\'\"]")
#: The exit status of a command not found (a shell's).
NOT_FOUND = 127


def report_needs_shell(target: str, argv: Sequence[str], items: Sequence[dict[str, Any]]) -> None:
    """The hint for `exec all -- 'uptime; df -h'` (pdsh's habit: one word for a shell), which every node ran as argv.

    The command is argv, quoted as typed (docs/ssh.md), so that word was looked for as one command and not found
    (127 on every node): when the command's first word is the only one holding whitespace or a shell's characters,
    say to run it through sh (`sh -c 'exit 127; x'` is not such a case: its first word was found).
    """
    if not items or any(item["exit_code"] != NOT_FOUND for item in items):
        return
    if not argv or not _SHELL_WORD.search(argv[0]) or any(_SHELL_WORD.search(word) for word in argv[1:]):
        return
    import shlex

    line = shlex.join(["factoryctl", "exec", target, "--", "sh", "-c", " ".join(argv)])
    sys.stderr.write(
        "hint: the command's words are run as given, not read by a shell; to have one read `;`, `|` or spaces, run"
        f" it through sh: `{line}`.\n"
    )


#: The longest part of a command line that `find_command_hint` matches (a longer one is matched by its start).
_FOUND_BY = 120


def find_command_hint(node: str, argv: Sequence[str], login: str | None) -> str:
    """How to find, and stop, `argv` running on `node` by its command line (`pgrep -f`: its process group unknown).

    Both look only among the processes of `login`, the user the command runs as on the node (`-U`): run as root,
    `pkill -f` killed every user's processes with that command line. A line longer than `_FOUND_BY` is matched by its
    start only, which other commands may share, and without `login` (not known) other users' processes are among
    those found: then only the look-up is offered, and the process to stop is the operator's pick (`kill -KILL PID`).
    """
    import shlex  # for the shell the hint is typed in, as its other commands are

    line = " ".join(argv)  # as /proc shows it to pgrep -f
    cut = len(line) > _FOUND_BY
    # at the line's start or after a space or `/`: a script's line starts with its interpreter (`/bin/sh job.sh`)
    pattern = "(^|[ /])" + re.sub(r"([\\.\[\](){}*+?|^$])", r"\\\1", line[:_FOUND_BY]) + ("" if cut else "$")
    found, nodes = shlex.quote(pattern), f"'{node}'"  # quoted as folded later (`'gpu[03-09]'`: zsh would glob it)
    own = "" if login is None else f"-U {shlex.quote(login)} "
    look = f"look for it with `factoryctl exec {nodes} -- pgrep {own}-af {found}`"
    if cut or login is None:
        why = (
            f"matches its first {_FOUND_BY} characters only, which other commands may share"
            if cut
            else "lists every user's processes"
        )
        return f"{look} (that {why}); stop the ones that are it with `factoryctl exec NODE -- kill -KILL PID`."
    return f"{look}; `factoryctl exec {nodes} -- pkill -KILL {own}-f {found}` stops it."


def login_user(spec: NodeSpec, transport: NodeTransport) -> str:
    """The user `transport` runs commands as on the node: an SSH node's login user, else this process's own user."""
    if spec.transport == "ssh":
        from factoryctl.transport.ssh_node import SshTransport

        if isinstance(transport, SshTransport):
            return transport.connection.target.user
    import os
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no name for it (a container's uid): pgrep and pkill take the number too
        return str(os.getuid())
