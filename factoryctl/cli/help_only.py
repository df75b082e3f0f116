"""`factoryctl [NOUN [VERB]] --help` builds only the command it shows, the rest as names (the start-up budget).

Typer builds the whole command tree (every option of ~40 commands: signatures, type hints, click objects) before it
parses a word, a sixth of `factoryctl --help`, and a help request reads the options of one command at most. It is
answered from a copy of the app in which every command off the requested path takes no parameters and every group
off it has no commands: the names, helps, one-line summaries, hidden and deprecated flags are the same objects, and
Typer derives the text from them in the same code (tests/foundation/test_help_cost_s25.py compares every help).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any

import typer
from typer.models import CommandInfo, TyperInfo

from factoryctl.cli.lazy_coercion import coercion_deferred

HELP_WORDS = ("--help", "-h")


def called(app: typer.Typer, args: list[str]) -> Any:  # noqa: ANN401 - what the command returned
    """Run `app` on `args` as `factoryctl` (click's standalone mode off); a help request as `help_only` says.

    A help request also builds no converter for the options not given (`lazy_coercion`): `power --help` used to
    import pydantic for the root's `--config` and `--help`, a third of its run.
    """
    root = help_only(app, args)
    if root is app:
        return app(args=args, prog_name="factoryctl", standalone_mode=False)
    with coercion_deferred():
        return root(args=args, prog_name="factoryctl", standalone_mode=False)


def help_only(app: typer.Typer, args: list[str]) -> typer.Typer:
    """`app`, or for `[NOUN [VERB]] --help` (a command's words, nothing else) a copy built for that help only.

    A shell's completion request keeps the whole tree (`factoryctl` with `_FACTORYCTL_COMPLETE` set).
    """
    path = args[:-1]
    if not args or args[-1] not in HELP_WORDS or "_FACTORYCTL_COMPLETE" in os.environ:
        return app
    return _along(app, path) if _names_a_command(app, path) else app


def _names_a_command(app: typer.Typer, path: list[str]) -> bool:
    """Whether `path` is a group's or command's words and nothing else: `exec n1 ls --help` runs `ls --help`."""
    if not path:
        return True
    here, rest = path[0], path[1:]
    if any(_command_name(info) == here for info in app.registered_commands):
        return not rest
    group = next((info for info in app.registered_groups if info.name == here), None)
    return group is not None and group.typer_instance is not None and _names_a_command(group.typer_instance, rest)


def _along(app: typer.Typer, path: list[str]) -> typer.Typer:
    """A copy of `app` whose command named `path[0]` is whole, and the group named so is cut along `path[1:]`."""
    shallow = copy.copy(app)
    here = path[0] if path else None
    shallow.registered_commands = [
        info if _command_name(info) in (here, None) else _without_parameters(info) for info in app.registered_commands
    ]
    shallow.registered_groups = [_group_along(info, here, path[1:]) for info in app.registered_groups]
    return shallow


def _command_name(info: CommandInfo) -> str | None:
    if info.name is not None:
        return info.name
    return None if info.callback is None else info.callback.__name__.lower().replace("_", "-")


def _group_along(info: TyperInfo, here: str | None, rest: list[str]) -> TyperInfo:
    """The group `info`: cut along `rest` if it is the one named `here`, else without commands (same help line)."""
    if not isinstance(info.name, str) or info.typer_instance is None:  # unnamed: its commands are its parent's
        return info
    group = copy.copy(info)
    if info.name == here:
        group.typer_instance = _along(info.typer_instance, rest)
    else:
        group.typer_instance = copy.copy(info.typer_instance)
        group.typer_instance.registered_commands = []
        group.typer_instance.registered_groups = []
    return group


def _without_parameters(info: CommandInfo) -> CommandInfo:
    """The command `info`, its callback a parameterless stand-in with the same name and docstring (its help)."""
    command = copy.copy(info)
    if info.callback is not None:
        command.callback = _stand_in(info.callback)
    return command


def _stand_in(callback: Callable[..., Any]) -> Callable[[], None]:
    def listed() -> None:  # pragma: no cover - never run: a help request exits first
        raise AssertionError("a help-only stand-in ran")

    listed.__name__ = callback.__name__
    listed.__doc__ = callback.__doc__
    return listed
