"""A global option typed after the command (`power set n1 --watts 300 -q`): the hint says where it goes.

Click only knows the command's own options there, so its "no such option: -q" alone left the operator guessing.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["power", "set", "n1", "--watts", "300", "-q"], "`factoryctl -q power set ...`"),
        (["gpus", "all", "--quiet"], "`factoryctl --quiet gpus ...`"),
        (["nodes", "list", "--debug"], "`factoryctl --debug nodes list ...`"),
        (["nodes", "list", "-c", "lab.yaml"], "`factoryctl -c lab.yaml nodes list ...`"),
        (["gpus", "--config"], "`factoryctl --config FILE gpus ...`"),
        (["gpus", "--version"], "`factoryctl --version`"),
    ],
)
def test_a_global_option_after_the_command_says_it_goes_before(cli: Any, args: list[str], hint: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    option = next(a for a in args if a.startswith("-") and a not in ("--watts",))
    assert result.stderr.splitlines() == [
        f"factoryctl: no such option: {option}.",
        f"hint: global options go before the command: {hint}.",
    ]


def test_any_other_unknown_option_still_points_at_the_commands_help(cli: Any) -> None:
    result = cli("power", "set", "n1", "--watts", "300", "--quite")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "hint: see `factoryctl power set --help`."


def test_a_missing_choice_option_is_one_line_naming_the_choices(cli) -> None:
    """Click lists the choices on tab-indented lines, which stderr showed as `\\x09day-ahead,`: one sentence instead."""
    result = cli(
        "power", "simulate", "--prices", "p.csv", "--curve", "c.csv", "--gpu", "a40", "--workload", "squad",
        "--max-throughput-loss", "0.05",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "factoryctl: missing option '--price-visibility': choose day-ahead or realtime.",
        "hint: see `factoryctl power simulate --help`.",
    ]
