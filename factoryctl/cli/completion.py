"""`factoryctl completion SHELL`: print the bash, zsh or fish completion script (also shipped in completions/)."""

from __future__ import annotations

from enum import Enum

import typer

COMPLETE_VAR = "_FACTORYCTL_COMPLETE"


class Shell(str, Enum):
    """Shells with a completion script."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


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
