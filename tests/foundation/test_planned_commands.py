"""Commands DESIGN.md lists are all commands now: `power diff` and `power report`, once planned, are in help and TAB.

They were refused with ``hint: `factoryctl power diff` is planned for a later release``; that hint is gone with the
last planned command, and a command that is not there (`power jobs`, `sched plan`) is pointed at the help.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from typer.main import get_command

from factoryctl.cli.app import app


@pytest.mark.parametrize("verb", ["diff", "report"])
def test_the_once_planned_commands_run(cli: Any, verb: str) -> None:
    result = cli("power", verb, "--help")
    assert result.exit_code == 0, result.stderr
    assert f"Usage: factoryctl power {verb} " in result.stdout


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["jbos", "list"], "factoryctl"),
        (["power", "jobs"], "factoryctl power"),
        (["sched", "plan"], "factoryctl sched"),
        (["jobs", "plan"], "factoryctl jobs"),
    ],
)
def test_a_command_not_there_is_pointed_at_the_help(cli: Any, args: list[str], path: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"hint: see `{path} --help`."


def _offered(words: str) -> list[str]:
    """What bash completion offers for `words`, asked as bash asks it (test_completion.py has more of these)."""
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "2"}
    done = subprocess.run([sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_diff_and_report_are_in_help_and_completion(cli: Any) -> None:
    root = get_command(app)
    assert {"diff", "report"} <= set(root.commands["power"].commands)  # type: ignore[attr-defined]
    listed = cli("power", "--help").stdout.partition("Commands:")[2].split()
    assert {"diff", "report"} <= set(listed)
    assert _offered("factoryctl power d") == ["diff"]
    assert _offered("factoryctl power r") == ["report", "reset"]
