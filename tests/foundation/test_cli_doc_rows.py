"""docs/cli.md has a row for every command, naming each of its options, and its empty `audit -o csv` example is right.

Reviewers found no rows for `nodes trust`, `nodes check`, `price history` and `price sources`, and the example
header without `requested_w,outcome`, the two columns added to the audit log since. Later rows lacked options their
`--help` shows (`telemetry collect` without `--timeout` and `--fanout`, `sched explain` without `--preemption`):
each row now names every option of its command (by one of its names), and names none the command lacks. The output
options every listing shares (`-o`, `--no-header`) are documented once, above the tables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from typer.main import get_command

from factoryctl.cli.app import app

CLI_MD = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _command_paths(command: object, path: tuple[str, ...] = ()) -> list[str]:
    """Every runnable command's path under the root (`nodes trust`), from the app as registered."""
    children = getattr(command, "commands", None)
    if not children:
        return [" ".join(path)]
    return [p for name, child in children.items() for p in _command_paths(child, (*path, name))]


#: Options documented once for every command that has them, not in each row.
SHARED_OPTIONS = frozenset({"--output", "-o", "--no-header", "--help"})
_OPTION_NAME = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")


def _commands() -> dict[str, Any]:
    """Every runnable command by its path (`nodes trust`), from the app as registered."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if not children:
            found[" ".join(path)] = command
        for name, child in (children or {}).items():
            walk(child, (*path, name))

    walk(get_command(app), ())
    return found


def _row_synopses() -> list[str]:
    """Each `factoryctl ...` synopsis in the first cell of a table row (a row may give two: `nodes drain` / `resume`)."""
    rows = [line for line in CLI_MD.read_text().splitlines() if line.startswith("| `factoryctl ")]
    return [synopsis for row in rows for synopsis in re.findall(r"`factoryctl ([^`]*)`", row.split(" | ")[0])]


def _option_gaps(path: str, command: Any, synopsis: str) -> list[str]:
    """The options of `command` its synopsis does not name, and the ones it names that `command` lacks."""
    named = set(_OPTION_NAME.findall(synopsis.removeprefix(path)))
    params = [p for p in command.params if p.param_type_name == "option" and not SHARED_OPTIONS & set(p.opts)]
    missing = [f"{path}: no {'/'.join(p.opts)}" for p in params if not named & {*p.opts, *p.secondary_opts}]
    known = {name for p in command.params for name in (*p.opts, *p.secondary_opts)}
    return missing + [f"{path}: no such option {name}" for name in sorted(named - known - SHARED_OPTIONS)]


def test_every_row_names_its_commands_options_and_no_other() -> None:
    commands = _commands()
    gaps: list[str] = []
    for synopsis in _row_synopses():
        words = synopsis.split()
        paths = [" ".join(words[:n]) for n in range(len(words), 0, -1) if " ".join(words[:n]) in commands]
        if paths:  # `nodes [TARGET]`, the group's shorthand, names no command of its own
            gaps += _option_gaps(paths[0], commands[paths[0]], synopsis)
    assert gaps == []


def test_every_command_has_a_row_starting_with_it() -> None:
    rows = [line for line in CLI_MD.read_text().splitlines() if line.startswith("| `factoryctl ")]
    cells = " ".join(row.split(" | ")[0] for row in rows)
    missing = [p for p in _command_paths(get_command(app)) if not re.search(rf"`factoryctl {re.escape(p)}[ `]", cells)]
    assert missing == []


def test_the_empty_audit_csv_example_is_the_header_printed(cli: Any, tmp_path: Path) -> None:
    factory = tmp_path / "factory.yaml"
    factory.write_text("name: lab\nnodes:\n  d07: {transport: local, sim: {profile: l40s, gpus: 1}}\n")
    assert cli("--config", str(factory), "telemetry", "collect", "--once").exit_code == 0  # the store, with no change
    printed = cli("--config", str(factory), "audit", "d07", "-o", "csv")
    assert printed.exit_code == 0, printed.stderr
    header = printed.stdout.strip()
    assert header.startswith("id,time,node,"), header
    assert f"`audit d07 -o csv` with no change on d07 prints the line\n`{header}`" in CLI_MD.read_text()
