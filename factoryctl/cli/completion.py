"""`factoryctl completion SHELL`: print the bash, zsh or fish completion script (also shipped in completions/).

Also the completion callbacks for options whose values are a fixed list kept as plain strings (an event kind, a log
level, scheduler policies): one helper for all of them, so every such option completes the same way, choices in
their documented order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import Enum

import typer

COMPLETE_VAR = "_FACTORYCTL_COMPLETE"


class Shell(str, Enum):
    """Shells with a completion script."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def complete_choices(choices: Iterable[str]) -> Callable[[str], list[str]]:
    """A completion callback offering the `choices` that start with what was typed (`autocompletion=` of an option).

    Example: `typer.Option(None, "--kind", autocompletion=complete_choices(EVENT_KINDS))`.
    """
    fixed = tuple(choices)

    def complete(incomplete: str) -> list[str]:
        return [choice for choice in fixed if choice.startswith(incomplete)]

    return complete


def complete_choice_list(choices: Iterable[str]) -> Callable[[str], list[str]]:
    """Like `complete_choices`, for a comma-separated list (`--policy fifo,sjf`): completes its last item.

    Each candidate is the whole value (what was typed before the last comma, then the choice), as the shells replace
    the whole word; choices already in the list are not offered again.
    """
    fixed = tuple(choices)

    def complete(incomplete: str) -> list[str]:
        head, _, last = incomplete.rpartition(",")
        taken = set(head.split(",")) if head else set()
        prefix = f"{head}," if head else ""
        return [prefix + choice for choice in fixed if choice.startswith(last) and choice not in taken]

    return complete


def completion_script(shell: str) -> str:
    """The completion script for `shell`, as Typer generates it for the `factoryctl` program."""
    from typer._completion_shared import get_completion_script

    return str(get_completion_script(prog_name="factoryctl", complete_var=COMPLETE_VAR, shell=shell)).rstrip() + "\n"


def register(app: typer.Typer) -> None:
    """Add `completion` to the root app."""

    @app.command("completion")
    def completion_command(shell: Shell = typer.Argument(..., help="bash, zsh or fish.")) -> None:
        """Print a shell completion script: `factoryctl completion bash > /etc/bash_completion.d/factoryctl`."""
        from factoryctl.cli.render import emit

        emit(completion_script(shell.value))
