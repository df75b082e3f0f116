"""What every command needs from the root: the loaded factory, and TARGET completion from the inventory.

Config is loaded on demand (never at import), so `--help` and completion of command names stay cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from factoryctl.cli.completion_cache import Inventory
    from factoryctl.config import FactoryConfig


def global_options(ctx: typer.Context) -> tuple[Path | None, bool]:
    """(--config, --quiet) given before the noun."""
    root = ctx.find_root()
    obj = root.obj
    return getattr(obj, "config", None), bool(getattr(obj, "quiet", False))


def load(ctx: typer.Context) -> FactoryConfig:
    """Load factory.yaml as the global options say."""
    from factoryctl.config import load_config

    config_path, _ = global_options(ctx)
    return load_config(config_path)


def complete_target(ctx: typer.Context, incomplete: str) -> list[str]:
    """Node names, `@groups` and `all` from the inventory, for shell completion of TARGET (see `target_candidates`).

    The inventory comes from completion_cache.py: parsed once per edit of factory.yaml, not at every TAB. A command
    in `SIMULATED_ONLY` offers just what it accepts: simulated nodes, and groups (or `all`) made of them only.
    """
    from factoryctl.cli.completion_cache import completion_inventory

    explicit = ctx.find_root().params.get("config")
    inventory = completion_inventory(Path(explicit) if explicit else None)
    if inventory is None:
        return []
    parent = ctx.parent.info_name if ctx.parent is not None else None
    return target_candidates(incomplete, inventory, simulated_only=(parent, ctx.info_name) in SIMULATED_ONLY)


#: Commands (noun, verb) whose TARGET must name simulated nodes only: their completion offers no real node.
SIMULATED_ONLY = frozenset({("sim", "inject")})


def target_candidates(incomplete: str, inventory: Inventory, simulated_only: bool = False) -> list[str]:
    """What may follow `incomplete` in a TARGET: its last element completed, the text before that element kept.

    `gpu01,g` offers `gpu01,gpu02`...; `@r` the groups; `gpu[` the nodes named gpu<digits> as one node set
    (`gpu[01-03]`); `gpu01/` the GPU indexes of that node when the inventory knows its count. Shells replace the
    whole word, so every candidate repeats what was typed before the element. With `simulated_only`, real nodes,
    and the groups (and `all`) holding one, are left out.
    """
    from factoryctl.targets import OPERATORS, split_terms

    offer_all = True
    if simulated_only:
        inventory, offer_all = _simulated_part(inventory)
    if "/" in incomplete:
        return _gpu_candidates(incomplete, inventory)
    depth, cut = 0, 0
    for pos, char in enumerate(incomplete):
        depth += (char == "[") - (char == "]")
        if depth == 0 and char in OPERATORS:
            cut = pos + 1
    head, last = incomplete[:cut], incomplete[cut:]
    if "[" in last:
        return _bracket_candidates(head, last, inventory)
    taken = {term for _, term in split_terms(head[:-1])} if head else set()
    words = [*(["all"] if offer_all else []), *(f"@{g}" for g in inventory.groups), *inventory.nodes]
    return [head + word for word in words if word.startswith(last) and word not in taken]


def _simulated_part(inventory: Inventory) -> tuple[Inventory, bool]:
    """The simulated nodes and the groups of simulated nodes only; and whether `all` is simulated nodes only."""
    from factoryctl.cli.completion_cache import Inventory

    sim = inventory.simulated
    nodes = {name: gpus for name, gpus in inventory.nodes.items() if name in sim}
    groups = {group: members for group, members in inventory.groups.items() if members and sim.issuperset(members)}
    return Inventory(nodes, sim, groups), bool(nodes) and len(nodes) == len(inventory.nodes)


def _bracket_candidates(head: str, last: str, inventory: Inventory) -> list[str]:
    """`gpu[0` -> `gpu[01-03]`: the nodes named `gpu` + digits starting `0`, folded into one bracket."""
    from ClusterShell.RangeSet import RangeSet

    stem, _, inside = last.partition("[")
    suffixes = [
        name[len(stem) :]
        for name in inventory.nodes
        if name.startswith(stem) and name[len(stem) :].isdigit() and name[len(stem) :].startswith(inside)
    ]
    return [f"{head}{stem}[{RangeSet.fromlist(suffixes)}]"] if suffixes else []


def _gpu_candidates(incomplete: str, inventory: Inventory) -> list[str]:
    """`gpu01/` -> `gpu01/0` ... `gpu01/7`, for one inventory node whose GPU count is known (`gpus`, `sim.gpus`).

    In a list the last element completes: `gpu01/0-2,` offers `gpu01/0-2,3` ... (GPUs already listed left out).
    """
    from factoryctl.errors import UsageError
    from factoryctl.targets import parse_gpu_target

    node_part, _, gpu_part = incomplete.rpartition("/")
    count = inventory.nodes.get(node_part)
    listed, _, last = gpu_part.rpartition(",")
    if count is None or not (last.isdigit() or not last):
        return []
    try:
        taken = set(parse_gpu_target(f"{node_part}/{listed}")[1] or ()) if listed else set()
    except UsageError:
        return []  # what is listed so far is not a GPU list: nothing to add to it
    head = f"{node_part}/{listed}," if listed else f"{node_part}/"
    return [f"{head}{index}" for index in range(count) if str(index).startswith(last) and index not in taken]


#: The TARGET argument of commands that default to every node, with completion from the inventory.
TARGET_ARG = typer.Argument("all", help="Node set, @group or all.", autocompletion=complete_target)
#: The same, where a command acts on the nodes and leaves no default (`exec`, `nodes drain`).
REQUIRED_TARGET_ARG = typer.Argument(..., help="Node set, @group or all.", autocompletion=complete_target)
GPU_TARGET_HELP = "Node set, @group or all; `node/0-3` picks GPUs."
#: A target that may name GPUs too (`gpus`, `telemetry history`); `power set` and `sim inject` require one.
GPU_TARGET_ARG = typer.Argument("all", help=GPU_TARGET_HELP, autocompletion=complete_target)
REQUIRED_GPU_TARGET_ARG = typer.Argument(..., help=GPU_TARGET_HELP, autocompletion=complete_target)
#: The range of every `--timeout`: a larger value overflows the platform's time_t when turned into a deadline, and
#: no node answer is worth waiting a day for. Intervals and durations share the day's ceiling for the same reason.
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 0.1, 86400.0


def seconds_check(option: str, low: float, example: str, high: float = MAX_TIMEOUT_S) -> Callable[[float], float]:
    """An option callback refusing seconds outside [low, high] (NaN and inf too): our usage error, exit 2.

    Every option in seconds goes through one of these (`--timeout`, `--interval`, `--min-interval`, `--duration`),
    so `inf` is refused the same way everywhere instead of overflowing a sleep or never ending.
    """

    def check(value: float) -> float:
        if not low <= value <= high:  # NaN fails both comparisons
            from factoryctl.errors import UsageError
            from factoryctl.textfile import exact_number  # never rounded: "not 86400" contradicted itself

            days = f" ({high / 86400:g} day)" if high == 86400 else ""
            raise UsageError(
                f"{option} must be from {exact_number(low)} to {exact_number(high)} seconds{days},"
                f" not {exact_number(value)}.",
                f"give the time in seconds, e.g. {option} {example}.",
            )
        return value

    return check


#: `--timeout`: from 0.1 s to a day.
check_timeout = seconds_check("--timeout", MIN_TIMEOUT_S, "30")


def timeout_option(default: float, *names: str, help: str) -> Any:  # noqa: ANN401 - typer.Option's, a default of any type
    """A `--timeout` option checked by `check_timeout`, so every command refuses the same values the same way."""
    return typer.Option(default, *(names or ("--timeout",)), callback=check_timeout, help=help)


#: How long to wait for each node, shared by every command that reaches nodes.
TIMEOUT_OPTION = timeout_option(15.0, help="Seconds to wait for each node (0.1-86400).")

#: The longest `--reason` (`power set / reset`, `nodes drain`), in characters: a ticket and a sentence fit; a file
#: pasted by mistake does not go into the audit log or the drain record, shown in every listing.
MAX_REASON_CHARS = 1000


def check_reason(value: str | None) -> str | None:
    """The `--reason` callback: longer than `MAX_REASON_CHARS` (spaces around it aside) is a usage error, exit 2."""
    if value is not None and len(value.strip()) > MAX_REASON_CHARS:
        from factoryctl.errors import UsageError

        raise UsageError(
            f"--reason is {len(value.strip())} characters long, over the {MAX_REASON_CHARS} a record takes: nothing was done.",
            "say why in a sentence, with a ticket or URL for the details.",
        )
    return value


def reason_option(help: str) -> Any:  # noqa: ANN401 - typer.Option's, a default of any type
    """A `--reason` / `-r` option checked by `check_reason`, so every command that records why refuses the same way."""
    return typer.Option(None, "--reason", "-r", callback=check_reason, help=help)
