"""Every command's one-line summary in `--help` is whole and fits its row in an 80-column terminal.

Click cuts a summary at its row's width with "..." (about 60 characters at the root), and cut them everywhere, even in
a 150-column terminal: "Write a commented example factory.yaml (`factoryctl init -`...". Each command now has a
summary (`short_help`) written to fit.
"""

from __future__ import annotations

import pytest

COMMANDS_HEADING = "Commands:"


def groups() -> list[list[str]]:
    """The command path of the root and of every group under it (`[]`, `["nodes"]`, `["metrics"]`, ...)."""
    from typer.main import get_command

    from factoryctl.cli.app import app

    found: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        found.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            if hasattr(sub, "commands"):
                walk(sub, [*path, name])

    walk(get_command(app), [])
    return found


def whole_summaries(path: list[str]) -> dict[str, str]:
    """The full summary of each command of the group at `path`, by name."""
    from typer.main import get_command

    from factoryctl.cli.app import app

    group = get_command(app)
    for name in path:
        group = group.commands[name]  # type: ignore[attr-defined]
    return {name: sub.get_short_help_str(limit=10**6) for name, sub in group.commands.items()}  # type: ignore[attr-defined]


def listed_rows(help_text: str) -> list[str]:
    """The lines of the help's Commands section."""
    lines = help_text.split(COMMANDS_HEADING + "\n", 1)[1].splitlines()
    rows = []
    for line in lines:
        if not line.strip():
            break
        rows.append(line)
    return rows


@pytest.mark.parametrize("columns", ["80", "150"])
@pytest.mark.parametrize("path", groups(), ids=lambda path: " ".join(["factoryctl", *path]))
def test_each_summary_is_whole_on_one_line(cli, monkeypatch, path, columns):
    monkeypatch.setenv("COLUMNS", columns)
    result = cli(*path, "--help")
    assert result.exit_code == 0, result.stderr
    rows = listed_rows(result.stdout)
    summaries = whole_summaries(path)
    assert len(rows) == len(summaries), rows  # one line each: none wrapped onto a second line
    for row in rows:
        name, summary = row.split(maxsplit=1)
        assert not summary.endswith("..."), row
        assert summary == summaries[name], row
        assert len(row) <= 80, row
