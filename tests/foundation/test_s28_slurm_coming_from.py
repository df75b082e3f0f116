"""docs/coming-from.md: every factoryctl command it gives is one the CLI takes, and the pages lead to it.

Each command is parsed by the real CLI with `--help` put after its command path: Click parses every option before it
prints the help, so a renamed command or option (or one that never existed) fails here, and nothing runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import typer

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / "docs" / "coming-from.md"


def documented_commands() -> list[str]:
    """The `factoryctl ...` code spans of the factoryctl column (the last) of every table row of the page."""
    rows = [line for line in PAGE.read_text().splitlines() if line.startswith("| `") or line.startswith("| ")]
    found: list[str] = []
    for row in rows:
        last = row.rstrip(" |").rsplit(" | ", 1)[-1]
        found += [c for c in re.findall(r"`(factoryctl [^`]*)`", last) if c not in found]
    return found


def with_help(command: str) -> list[str]:
    """The command's argv with `--help` after its command path (`jobs list --help --node n01`)."""
    from factoryctl.cli.app import app

    words = shlex.split(command.split(" < ", 1)[0])[1:]
    group: Any = typer.main.get_command(app)
    at = 0
    while at < len(words) and words[at] in getattr(group, "commands", {}):
        group = group.commands[words[at]]
        at += 1
    return [*words[:at], "--help", *words[at:]]


def test_the_page_gives_commands_for_every_tool_it_names() -> None:
    commands = documented_commands()
    assert len(commands) >= 40
    text = PAGE.read_text()
    for tool in ("pdsh", "nvidia-smi -q", "nvidia-smi -pl", "nvidia-smi --query-gpu", "nvitop", "sinfo", "squeue -w"):
        assert f"| `{tool}" in text, tool
    for tool in ("squeue -u", "scontrol show job", "scancel", "sbatch", "srun", "sacct"):
        assert f"| `{tool}" in text, tool
    assert "## A tariff spreadsheet" in text
    assert "factoryctl jobs list --node n01" in commands
    assert "factoryctl gpus n01/3 -o wide" in commands


def test_every_command_of_the_page_parses(cli: Any) -> None:
    for command in documented_commands():
        argv = with_help(command)
        done = cli(*argv)
        assert (done.exit_code, done.stderr) == (0, ""), (command, done.stderr)
        assert done.stdout.startswith("Usage:"), command


def test_the_readme_and_the_docs_index_link_the_page() -> None:
    assert "(docs/coming-from.md)" in (REPO / "README.md").read_text()
    assert "(coming-from.md)" in (REPO / "docs" / "index.md").read_text()
