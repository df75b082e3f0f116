"""docs/cli.md has a row for every command, and its example of an empty `audit -o csv` is the header printed.

Reviewers found no rows for `nodes trust`, `nodes check`, `price history` and `price sources`, and the example
header without `requested_w,outcome`, the two columns added to the audit log since.
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
