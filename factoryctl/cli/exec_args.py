"""Where `exec`'s own options end and the remote command begins: at the command's first word, as ssh and pdsh say.

click reads every word that looks like an option as the command's own, wherever it stands: `exec s01 grep -n foo f`
lost `-n` (taken as `--no-stdin`), `exec s01 df -h /` printed exec's help and `exec s01 echo hi -- -t 5` lost the
node's `--`. Like `ssh HOST CMD...`, exec's options may come before the command's first word (`exec all -t 5 -L
uptime`), and from that word on everything is the command's, its own `--` included. `ExecCommand` tells click so by
putting a `--` in front of that word; an explicit `--` before it (`exec all -t 5 -- uptime`) is left as it is.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Context  # typer >= 0.26 vendors click
    from typer._click.shell_completion import CompletionItem


class ExecCommand(TyperCommand):
    """A command whose last, variadic argument is a remote command: every word from its first one on is its own."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Parse `args` with a `--` in front of the remote command's first word (see the module doc)."""
        return super().parse_args(ctx, self.separated_args(ctx, args))

    def separated_args(self, ctx: Context, args: list[str]) -> list[str]:
        """`args` as `parse_args` hands them to click: `separated` by this command's options and arguments.

        The argv text check (`arguments.check_text_arguments`) parses them so too: with click's plain parser, a
        remote word exec lacks as an option (`exec n01 echo -rX`) left every word unparsed, TARGET unchecked.
        """
        return separated(args, self.value_options(ctx), self.leading_arguments())

    def shell_complete(self, ctx: Context, incomplete: str) -> list[CompletionItem]:
        """No exec option is offered once the remote command has begun: `exec all grep -` is grep's option."""
        if incomplete.startswith("-") and self.remote_words(ctx):
            return []
        return super().shell_complete(ctx, incomplete)

    def remote_words(self, ctx: Context) -> list[str]:
        """The remote command's words parsed so far (the variadic argument's value in `ctx`)."""
        for param in self.params:
            if param.param_type_name == "argument" and param.nargs != 1 and param.name:
                return list(ctx.params.get(param.name) or ())
        return []

    def value_options(self, ctx: Context) -> frozenset[str]:
        """The names of this command's options that take a value (`-t 5`, `--fanout 8`): not flags."""
        return frozenset(
            name
            for param in self.get_params(ctx)
            if param.param_type_name == "option"
            and not getattr(param, "is_flag", False)
            and not getattr(param, "count", False)
            for name in (*param.opts, *param.secondary_opts)
        )

    def leading_arguments(self) -> int:
        """How many single-word arguments (TARGET) come before the variadic one (the remote command)."""
        count = 0
        for param in self.params:
            if param.param_type_name == "argument":
                if param.nargs != 1:
                    break
                count += 1
        return count


def separated(args: Sequence[str], value_options: Collection[str], leading: int) -> list[str]:
    """`args` with `--` in front of the remote command's first word (unchanged if an explicit `--` comes first).

    That word is the first one past `leading` positional words that is neither an option nor an option's value.
    """
    start = command_start(args, value_options, leading)
    return list(args) if start is None else [*args[:start], "--", *args[start:]]


def command_start(args: Sequence[str], value_options: Collection[str], leading: int) -> int | None:
    """The index of the remote command's first word in `args` (see `separated`), or None."""
    positional = 0
    value_next = False
    for index, word in enumerate(args):
        if value_next:  # the value of the option before: `-t 5`, even `-t -1`
            value_next = False
        elif word == "--":
            return None
        elif word.startswith("-") and word != "-":
            value_next = _takes_next_word(word, value_options)
        elif positional == leading:
            return index
        else:
            positional += 1
    return None


def _takes_next_word(word: str, value_options: Collection[str]) -> bool:
    """Whether option `word` takes the next word as its value: `-t`, `--timeout`, `-Lt`; not `--timeout=5`, `-t5`."""
    if word.startswith("--"):
        return "=" not in word and word in value_options
    for at, letter in enumerate(word[1:], start=1):  # short options may be grouped: `-nL`, `-Lt 5`, `-Lt5`
        if f"-{letter}" in value_options:
            return at == len(word) - 1
    return False
