"""`factoryctl nodes`: the inventory with each node's reachability, health, power and drain state.

`factoryctl nodes n01` is read as `factoryctl nodes list n01`, as `gpus n01` lists GPUs: people type it. A first word
close to a verb (`nodes lst`) is a mistyped verb rather than a TARGET when it cannot be one: another word follows it
(`list` takes one TARGET), or it names nothing in the inventory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

import typer
from typer._click.shell_completion import CompletionItem
from typer.core import TyperGroup

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, INTERVAL_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION, WATCH_OPTION
from factoryctl.cli.render import Column, OutputFormat, iso_utc, limit_watts
from factoryctl.errors import UsageError
from factoryctl.transport.fanout import DEFAULT_FANOUT

if TYPE_CHECKING:
    from typer._click import Context as ClickContext

    from factoryctl.config import FactoryConfig
    from factoryctl.errors import NodeError
    from factoryctl.jobs.holders import GpuHolders
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import DrainInfo
    from factoryctl.telemetry.poll import PollResult


class NodesGroup(TyperGroup):
    """The `nodes` noun: a first word that is not a verb is a TARGET for `list`."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        """`nodes [-o F] TARGET ...` -> `nodes list [-o F] TARGET ...`; verbs, options and `--help` stay as they are.

        A first word close to a verb (`nodes lst n01`) followed by another word is a mistyped verb (a usage error);
        alone (`nodes lst`) it is left for `list` to judge against the inventory (`_resolve`).
        """
        words = _words(args, _valued_options(self.commands["list"]))
        if words and words[0] not in self.commands:
            verb = near_verb(words[0], list(self.commands))
            if verb is not None and len(words) > 1 and not ctx.resilient_parsing:  # completion never fails
                raise no_such_verb(words[0], verb)
            ctx.meta[FIRST_WORD_TARGET] = words[0]
            args = ["list", *args]
        elif not words and _list_options(args):
            args = ["list", *args]
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: ClickContext, incomplete: str) -> list[CompletionItem]:
        """Verbs and options, then TARGETs from the inventory (`factoryctl nodes gpu0<TAB>`)."""
        items = super().shell_complete(ctx, incomplete)
        if not incomplete.startswith("-"):
            items += [CompletionItem(name) for name in context.complete_target(cast(typer.Context, ctx), incomplete)]
        return items


#: `ctx.meta` key: the TARGET that `nodes` found as its first word (`nodes lst`), rather than after `list`.
FIRST_WORD_TARGET = "factoryctl.nodes.first_word_target"


def _words(args: list[str], valued: Collection[str]) -> list[str]:
    """The arguments that are neither options nor the value of an option in `valued` (`--timeout 3`)."""
    words, rest = [], iter(args)
    for arg in rest:
        if arg in valued:
            next(rest, None)
        elif not arg.startswith("-"):
            words.append(arg)
    return words


def _valued_options(command: Any) -> set[str]:  # noqa: ANN401 - a Click Command; is_flag, count are its Options' only
    """The option names of `command` that take a value (`-o`, `--timeout`), whose value is no TARGET."""
    return {
        name
        for param in command.params
        if getattr(param, "param_type_name", "") == "option" and not param.is_flag and not param.count
        for name in (*param.opts, *param.secondary_opts)
    }


def near_verb(word: str, verbs: Sequence[str]) -> str | None:
    """The verb `word` looks like a typo of (`lst` -> `list`), else None."""
    import difflib

    near = difflib.get_close_matches(word, verbs, n=1, cutoff=0.7)
    return near[0] if near else None


def no_such_verb(word: str, verb: str) -> UsageError:
    """The usage error (exit 2) for a mistyped verb: `nodes lst` -> there is no such command, did you mean `list`."""
    from factoryctl.cli.arguments import shell_word

    return UsageError(f"there is no `nodes {shell_word(word)}` command.", f"did you mean `factoryctl nodes {verb}`?")


def _list_options(args: list[str]) -> bool:
    """Whether `args` (no verb) holds an option only `list` takes (`nodes -w`), and no `--help`."""
    names = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    return "-h" not in names and "--help" not in names and bool(names - {"-o", "--output", "--no-header"})


app = typer.Typer(
    cls=NodesGroup,
    no_args_is_help=False,
    invoke_without_command=True,
    subcommand_metavar="[TARGET | COMMAND [ARGS]...]",
    epilog="`factoryctl nodes [TARGET]` is `factoryctl nodes list [TARGET]`: its --watch, --interval and --timeout "
    "are in `factoryctl nodes list --help`.",
)

NODE_COLUMNS = (
    Column("node", "NODE"),
    Column("state", "STATE"),
    Column("drained", "DRAINED"),
    Column("healthy", "HEALTHY"),
    Column("gpus", "GPUS"),
    Column("gpus_used", "USED"),
    Column("gpus_free", "FREE"),
    Column("power_w", "POWER W"),
    Column("power_limit_w", "CAP W", show=limit_watts),
    Column("hottest_temperature_c", "HOTTEST C"),
    Column("rack", "RACK"),
    Column("host", "HOST", wide_only=True),
    Column("port", "PORT", wide_only=True),
    Column("transport", "TRANSPORT", wide_only=True),
    Column("backend", "BACKEND", wide_only=True),
    Column("agent_version", "AGENT", wide_only=True),
    Column("labels", "LABELS", wide_only=True),
    Column("last_seen", "LAST SEEN", wide_only=True),
    Column("error", "ERROR", wide_only=True),
    Column("drain_reason", "REASON", wide_only=True),
    Column("drained_by", "DRAINED BY", wide_only=True),
    Column("drained_at", "DRAINED AT", wide_only=True),
    Column("unhealthy_reason", "UNHEALTHY", wide_only=True),
)


#: The STATE of a node not heard from yet (`--watch`'s first redraws), as the dashboard's (docs/dashboard.md).
CONNECTING = "connecting"


def reached_at(spec: NodeSpec) -> tuple[str, int | None]:
    """The host and port an SSH node is reached at, as the connection resolves them; a local node's host, no port.

    factory.yaml's `host` and `port`, else the `HostName` and `Port` of `~/.ssh/config` for its host (a node listed
    as gpu01:22 while the connection goes to 127.0.0.1:2222 misleads), as `config show --ssh` shows them.
    """
    if spec.transport != "ssh":
        return spec.host, None
    from factoryctl.transport.ssh_config import reached_at as ssh_reached_at

    return ssh_reached_at(spec)


def node_item(
    spec: NodeSpec,
    sample: NodeSample | None,
    drain: DrainInfo | None,
    drains_known: bool = True,
    last_seen: float | None = None,
    held: frozenset[int] | None = None,
) -> dict[str, Any]:
    """One `nodes list` item (the Node fields of docs/cli.md, with why, by whom and since when a node is drained).

    `drained` is None when the store could not say (`drains_known` false): unknown, not "not drained". `last_seen`
    is when a node that did not answer last sent a sample, when known (a live controller's store). No `sample` is a
    node `--watch` has not heard from yet (watch_poll.py): `connecting`, as the dashboard says it, with no error; it
    was `down` with ERROR `unknown`, which a first redraw showed of every healthy node still queued behind `--fanout`.
    `held`: the GPU indexes the store's running jobs hold there (jobs/holders.py), None when the store could not say:
    `gpus_used` and `gpus_free` are then null, as `sinfo` would not guess them either.
    """
    answered = sample is not None and sample.error is None
    if answered and sample is not None:
        last_seen = sample.time
    host, port = reached_at(spec)
    return {
        "node": spec.name,
        "host": host,
        "port": port,
        "transport": spec.transport,
        "state": sample.state if sample else CONNECTING,
        "drained": drain is not None if drains_known else None,
        "healthy": bool(sample and sample.healthy),
        "agent_version": sample.agent_version if sample else None,
        "backend": sample.backend if sample else None,
        "gpus": len(sample.gpus) if answered and sample else None,
        "power_w": sample.power_w if sample else None,
        "power_limit_w": sample.power_limit_w if sample else None,
        "hottest_temperature_c": sample.hottest_temperature_c if sample else None,
        "rack": spec.rack,
        "labels": dict(spec.labels),
        "last_seen": iso_utc(last_seen) if last_seen is not None else None,
        "error": sample.error if sample else None,
        "drain_reason": drain.reason if drain else None,
        "drained_by": drain.by if drain else None,
        "drained_at": iso_utc(drain.since) if drain else None,
        "unhealthy_reason": unhealthy_reason(spec.name, sample),
        "gpus_used": len(held) if held is not None else None,
        "gpus_free": free_gpus(sample, held) if answered else None,
    }


def free_gpus(sample: NodeSample | None, held: frozenset[int] | None) -> int | None:
    """How many GPUs `sample` reports that no job holds (`sinfo`'s idle GPUs); None when either is unknown."""
    if sample is None or held is None:
        return None
    return sum(gpu.index not in held for gpu in sample.gpus)


def unhealthy_reason(node: str, sample: NodeSample | None) -> str | None:
    """Why `healthy` is false (`n1/4 lost; n1/2 uncorrectable ECC 3`), None when it is true.

    The rule is NodeSample.healthy's: a node that did not answer, a lost GPU, an uncorrectable ECC error.
    """
    if sample is None:  # not heard from yet (`--watch`)
        return f"not sampled ({CONNECTING})"
    if sample.healthy:
        return None
    if sample.state == "down" or sample.error is not None:
        return f"not sampled ({sample.error or sample.state})"
    reasons = []
    for gpu in sample.gpus:
        if "gpu_lost" in gpu.null_reasons.values():
            reasons.append(f"{node}/{gpu.index} lost")
        if gpu.ecc_uncorrected:
            reasons.append(f"{node}/{gpu.index} uncorrectable ECC {gpu.ecc_uncorrected}")
    return "; ".join(reasons) or "unhealthy"


def drained_nodes(config: FactoryConfig) -> dict[str, DrainInfo] | None:
    """Nodes kept off by `nodes drain`, with why, who and when (from the store; none when there is no store yet).

    None, after a warning on stderr, when the store cannot be read (damaged): the nodes still answer for themselves,
    as `gpus` does, only their drains are unknown.
    """
    if not config.store_path.exists():
        return {}
    from factoryctl.store.sqlite import Store, StoreError

    try:
        store = Store(config.store_path, readonly=True)
        try:
            return store.drained_nodes()
        finally:
            store.close()
    except StoreError as exc:
        sys.stderr.write(f"factoryctl: warning: {exc.message} Which nodes are drained is unknown (DRAINED -).\n")
        return None


def node_items(
    config: FactoryConfig,
    specs: Sequence[NodeSpec],
    timeout: float,
    fanout: int = DEFAULT_FANOUT,
    quiet: bool = True,
    watch: float | None = None,
) -> Callable[[], tuple[list[dict[str, Any]], list[NodeError]]]:
    """Each redraw's items for `nodes list`, in inventory order, and the nodes' errors (a progress line unless `quiet`).

    With `--watch` (`watch` its interval) a node that does not answer never holds the others' rows (watch_poll.py).
    """
    from factoryctl.cli.gpus import holders_reader
    from factoryctl.cli.watch_poll import asker

    ask = asker(config, specs, timeout, fanout, quiet, watch)
    holders = holders_reader(config.store_path, "Which GPUs jobs hold is unknown (USED and FREE -).")
    return lambda: _items(config, specs, ask(), holders())


def _items(
    config: FactoryConfig, specs: Sequence[NodeSpec], result: PollResult, holders: GpuHolders
) -> tuple[list[dict[str, Any]], list[NodeError]]:
    """The items of one redraw: each node's answer in `result`, its drain and the GPUs jobs hold from the store."""
    by_name = {s.node: s for s in result.samples}
    drained = drained_nodes(config)
    items = [
        node_item(
            spec,
            by_name.get(spec.name),
            (drained or {}).get(spec.name),
            drained is not None,
            result.last_seen.get(spec.name),
            holders.held(spec.name),
        )
        for spec in specs
    ]
    return items, result.errors


def _list(
    ctx: typer.Context,
    target: str,
    output: OutputFormat,
    no_header: bool,
    watch: bool,
    interval: float,
    timeout: float,
    fanout: int = DEFAULT_FANOUT,
) -> None:
    from factoryctl.cli.listing import show_listing

    config, specs = _resolve(ctx, target)
    produce = node_items(config, specs, timeout, fanout, context.global_options(ctx)[1], interval if watch else None)
    code = show_listing(produce, NODE_COLUMNS, output, no_header, watch, interval)
    raise typer.Exit(code)


def _resolve(ctx: typer.Context, target: str) -> tuple[FactoryConfig, list[NodeSpec]]:
    """factory.yaml and the nodes to list.

    A first word of `nodes` that looks like a verb (`nodes lsit`) and is no TARGET of a valid inventory, or comes
    with no factory.yaml at all, is a mistyped verb: a usage error saying so, rather than a target or "no
    factory.yaml" error. A factory.yaml that is there but fails to load keeps its config error (exit 3): it may name
    that very node, and the verb guess would hide what is wrong.
    """
    from factoryctl.errors import ConfigError

    verb = None
    if ctx.meta.get(FIRST_WORD_TARGET) == target:
        verb = near_verb(target, list(getattr(ctx.parent.command, "commands", {})) if ctx.parent else [])
    try:
        config = context.load(ctx)
    except ConfigError:
        if verb is None or _config_file_exists(ctx):
            raise
        raise no_such_verb(target, verb) from None
    try:
        return config, config.resolve_target(target)
    except UsageError:
        if verb is None:
            raise
        raise no_such_verb(target, verb) from None


def _config_file_exists(ctx: typer.Context) -> bool:
    """Whether the factory.yaml the commands would read is there (a pipe too); a path that cannot be checked is not."""
    import os

    from factoryctl.config import discover

    return os.path.exists(discover(context.global_options(ctx)[0])[0])


@app.callback()
def nodes_default(
    ctx: typer.Context,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """List, trust, check, drain and resume nodes (`factoryctl nodes [TARGET]` lists them)."""
    if ctx.invoked_subcommand is None:
        _list(ctx, "all", output, no_header, False, 2.0, 15.0, DEFAULT_FANOUT)


@app.command("list", short_help="One row per node: state, drained, health, GPUs, power.")
def list_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    watch: bool = WATCH_OPTION,
    interval: float = INTERVAL_OPTION,
    timeout: float = context.TIMEOUT_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """One row per node: state, drained, healthy, GPUs, power, hottest GPU, rack."""
    _list(ctx, target, output, no_header, watch, interval, timeout, fanout)
