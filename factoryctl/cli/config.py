"""`factoryctl config validate / show / locate`: check and print the resolved configuration."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, dump_json, dump_yaml, emit

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec

app = typer.Typer(no_args_is_help=True)


@app.command("locate", short_help="Print which factory.yaml would be used, and why.")
def locate(ctx: typer.Context) -> None:
    """Print which factory.yaml would be used, and why; exit 3 when that file is missing."""
    from factoryctl.cli.arguments import bytes_as_text, shell_word
    from factoryctl.config import discover
    from factoryctl.errors import ConfigError
    from factoryctl.pathlimits import check_path_length, shown_path

    explicit, quiet = context.global_options(ctx)
    path, source = discover(explicit)
    emit(f"{path}\n")  # printed even when missing: it is where the other commands look; its exact bytes (main())
    check_path_length(path, f"the factory.yaml path (from {source})", "pass --config with a shorter path.")
    shown = shown_path(bytes_as_text(str(path)))  # `\xe9` for a Latin-1 byte, and a huge path cut short
    if not path.exists():
        hint = f"`factoryctl init {shell_word(str(path))}` writes an example there."
        raise ConfigError(f"{shown} (from {source}) does not exist.", hint)
    if path.is_dir():  # `validate` and every other command refuse it: say so here too
        hint = f"pass --config {shell_word(str(path / 'factory.yaml'))} (the file, not its directory)."
        raise ConfigError(f"{shown} (from {source}) is a directory, not a factory.yaml.", hint)
    if not (path.is_file() or path.is_fifo()):
        raise ConfigError(
            f"{shown} (from {source}) is not a regular file.", "pass --config FILE with your factory.yaml."
        )
    if not quiet:  # a note (docs/cli.md, -q): the path on stdout is the result
        typer.echo(f"from {source} (exists)", err=True)


@app.command("validate")
def validate(ctx: typer.Context) -> None:
    """Check factory.yaml; errors name file:line:col and exit 3."""
    config = context.load(ctx)
    nodes, groups = len(config.nodes), len(config.groups)
    typer.echo(f"{config.path}: ok, {nodes} node{'s' * (nodes != 1)}, {groups} group{'s' * (groups != 1)}")
    if not nodes:  # valid YAML, but every command acting on nodes would stop with "the inventory has no nodes"
        typer.echo(
            f"warning: {config.path} is valid but defines no nodes: add some under `nodes:` (see `factoryctl init`).",
            err=True,
        )
    for warning in config.warnings:  # settings naming `$VARS`, nodes sharing one address (config_checks.py)
        typer.echo(f"warning: {warning}", err=True)
    _warn_price_source(config)
    _warn_unreadable_policy(config)
    _warn_unreadable_keys(config)
    quiet = context.global_options(ctx)[1]  # warnings stay under -q; the note below does not (docs/cli.md)
    if config.settings.power.policy is not None and not quiet:  # valid: say who applies it
        typer.echo(f"note: power.policy ({config.settings.power.policy}) {_who_applies(config)}", err=True)


def _who_applies(config: FactoryConfig) -> str:
    """The controller's power loop applies the policy unless `power.interval` is 0s; `power apply` always can."""
    from factoryctl.config_schema import parse_duration

    if parse_duration(config.settings.power.interval) > 0:
        return (
            f"is applied by a running controller every power.interval ({config.settings.power.interval}) and at"
            " each price interval's start, and by `factoryctl power apply` (docs/power.md)."
        )
    return (
        "is applied when `factoryctl power apply` runs (from cron: docs/power.md); power.interval is 0s, so the"
        " controller does not apply it."
    )


def _warn_price_source(config: FactoryConfig) -> None:
    """A price source that cannot give prices is a warning here: the commands that read prices refuse it."""
    from factoryctl.config_price_sources import price_source_problem

    power = config.settings.power
    problem = price_source_problem(power.price_source, power.prices)
    if problem is not None:
        typer.echo(f"warning: {config.path}: power.price_source: {problem}.", err=True)
    elif power.price_source is not None:
        _warn_unloadable_source(config, power.price_source, power.prices)


def _warn_unloadable_source(config: FactoryConfig, name: str, prices: str | None) -> None:
    """Load the source as the price commands will (a plugin imported and constructed, not fetched), and warn.

    Validation is where a site finds out that its plugin's package is broken or its CSV of prices is not where
    factory.yaml says, before the dashboard shows `n/a (error)` or a cron job exits 1 at night.
    """
    from pathlib import Path

    from factoryctl.errors import FactoryError
    from factoryctl.power.plugins import open_price_source

    base = config.path.parent if config.path is not None else None
    try:
        source = open_price_source(name, prices, base)
    except FactoryError as exc:
        typer.echo(f"warning: {config.path}: power.price_source: {exc.message}", err=True)
        return
    path = getattr(source.source, "path", None) if source.builtin else None
    if isinstance(path, Path) and not path.is_file():
        typer.echo(f"warning: {config.path}: power.prices: {path} is not a file that can be read.", err=True)


def _warn_unreadable_policy(config: FactoryConfig) -> None:
    """Warn when power.policy names no readable file (taken from factory.yaml's directory, as power.prices is).

    Not applied yet, it is still what `power simulate --policy` is meant to be given: a typo is found here.
    """
    from pathlib import Path

    from factoryctl.config_schema import config_dir, from_config_dir

    written = config.settings.power.policy
    if written is None:
        return
    path = Path(from_config_dir(written, config_dir(config.path)) or written).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        typer.echo(f"warning: {config.path}: power.policy: {path} is not a file that can be read.", err=True)


def _warn_unreadable_keys(config: FactoryConfig) -> None:
    """Warn when an SSH node's identity_file names no readable file: its login would fail on every command.

    One line per file, with the nodes naming it folded (`n[001-400]`): the same missing key under `ssh:` is one
    mistake, not 400. A warning, not an error: factory.yaml may be checked on a machine other than the one that
    logs in (CI), where the key is not.
    """
    from factoryctl.model.folding import fold_nodes

    by_file: dict[str, list[str]] = {}
    for name, spec in config.nodes.items():
        if spec.transport == "ssh" and spec.identity_file:
            by_file.setdefault(spec.identity_file, []).append(name)
    for written, names in by_file.items():
        path = os.path.expanduser(written)
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            count = f" ({len(names)})" if len(names) > 1 else ""
            typer.echo(
                f"warning: {config.path}: identity_file {path} of {fold_nodes(names)}{count} is not a file that can "
                "be read: their logins will fail; correct the path (under ssh: or the node's).",
                err=True,
            )


#: Node fields only an SSH connection uses: `config show` leaves them out of a local node (it has no port or login).
SSH_ONLY = frozenset({"port", "user", "identity_file", "known_hosts"})


@app.command("show", short_help="Print the resolved configuration, defaults filled in.")
def show(
    ctx: typer.Context,
    target: str | None = typer.Argument(
        None, help="With --ssh: node set, @group or all (the default).", autocompletion=context.complete_target
    ),
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
    ssh: bool = typer.Option(
        False,
        "--ssh",
        help="Show what each SSH node's connection uses after ~/.ssh/config, and where each value is from.",
    ),
) -> None:
    """Print the resolved configuration: defaults filled in, node sets expanded.

    With --ssh, a listing instead: per SSH node the host, port, user, keys and jump hosts it connects with, as
    `ssh -G` shows them, and where each came from (factory.yaml, a ~/.ssh/config line, a default).
    """
    if ssh:
        raise typer.Exit(_show_ssh(ctx, target or "all", output))
    if target is not None:
        from factoryctl.cli.arguments import shell_word
        from factoryctl.errors import UsageError

        raise UsageError(
            f"`config show` takes a TARGET ({target}) only with --ssh.",
            f"add --ssh to see how it is reached: `factoryctl config show --ssh {shell_word(target)}`.",
        )
    document = _document(context.load(ctx))
    emit(dump_json(document) if output is OutputFormat.json else dump_yaml(document))


def _document(config: FactoryConfig) -> dict[str, Any]:
    """The resolved configuration `config show` prints."""
    from dataclasses import asdict

    from factoryctl.config_schema import config_dir, from_config_dir

    document: dict[str, Any] = config.settings.model_dump(mode="json", exclude={"nodes", "groups"})
    document["state_dir"] = os.path.abspath(config.state_dir)  # as used: relative to the cwd for a piped config
    base, ssh = config_dir(config.path), document.get("ssh") or {}
    for key in ("identity_file", "known_hosts"):  # as the nodes' own: relative ones from factory.yaml's directory
        if key in ssh:
            ssh[key] = from_config_dir(ssh[key], base)
    document["nodes"] = {
        name: {
            k: v for k, v in asdict(spec).items() if k != "name" and not (spec.transport == "local" and k in SSH_ONLY)
        }
        for name, spec in config.nodes.items()
    }
    document["groups"] = {name: list(members) for name, members in config.groups.items()}
    return document


#: The SOURCE cell's name of a `sources` field, as its column is headed.
_SHORT = {"identity_files": "identity"}


def _sources_cell(sources: object) -> str:
    """The SOURCE cell: each value not from factory.yaml, with its ~/.ssh/config line (`port=~/.ssh/config:4`)."""
    if not isinstance(sources, dict):
        return "-"
    home = os.path.expanduser("~")
    cells = []
    for field, where in sources.items():
        if where == "factory.yaml":
            continue
        path, _, line = str(where).rpartition(", line ")
        short = f"{path}:{line}" if path else str(where)
        short = "~" + short[len(home) :] if short.startswith(home + "/") else short
        cells.append(f"{_SHORT.get(field, field)}={short}")
    return " ".join(cells) or "factory.yaml"


SSH_COLUMNS = (
    Column("node", "NODE"),
    Column("host", "HOSTNAME"),
    Column("port", "PORT"),
    Column("user", "USER"),
    Column("identity_files", "IDENTITY"),
    Column("jump", "JUMP"),
    Column("sources", "SOURCE", show=_sources_cell),
)


def _show_ssh(ctx: typer.Context, target: str, output: OutputFormat) -> int:
    """`config show --ssh`: the listing of the SSH nodes in `target` as they connect; the exit status."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import render_listing, report_node_errors
    from factoryctl.errors import ConfigError, NodeError, most_severe
    from factoryctl.model.folding import fold_nodes
    from factoryctl.transport.fanout import as_node_error

    config = context.load(ctx)
    specs = config.resolve_target(target)
    items: list[dict[str, Any]] = []
    errors: list[NodeError] = []
    for spec in specs:
        if spec.transport != "ssh":
            continue
        try:
            items.append(ssh_item(spec))
        except ConfigError as exc:  # a ~/.ssh/config this node cannot use: the connection would stop there too
            errors.append(as_node_error(spec.name, exc))
    emit(render_listing(items, [e.as_json() for e in errors], SSH_COLUMNS, output))
    local = [spec.name for spec in specs if spec.transport != "ssh"]
    if local and not context.global_options(ctx)[1]:
        count = f" ({len(local)})" if len(local) > 1 else ""
        typer.echo(f"note: {fold_nodes(local)}{count}: transport local, no SSH settings to show.", err=True)
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    return int(most_severe([e.exit_code for e in errors]))


def ssh_item(spec: NodeSpec) -> dict[str, Any]:
    """One row of `config show --ssh`: what the node's connection uses, and where each value is from.

    Resolved as the connection resolves it (ssh_config.explain): factory.yaml wins where it says something (a
    port other than 22, a user, an identity_file), ~/.ssh/config fills in the rest, then the defaults; a
    `Match exec` command of ~/.ssh/config runs once for the node, as when it connects.
    """
    from factoryctl.transport.ssh_config import explain

    target, lines = explain(spec)
    hops: list[str] = []
    hop = target.jump
    while hop is not None:  # ProxyJump a,b: b is the last hop before the node, reached through a
        hops.insert(0, hop.label)
        hop = hop.jump
    yaml = "factory.yaml"
    sources = {
        "host": lines.get("hostname", yaml),
        "port": yaml if spec.port != 22 else lines.get("port", "default"),
        "user": yaml if spec.user else lines.get("user", "default"),
        "identity_files": yaml if spec.identity_file else lines.get("identityfile", "default"),
        "jump": lines.get("proxyjump", "~/.ssh/config") if hops else "default",
    }
    return {
        "node": spec.name,
        "host": target.host,
        "port": target.port,
        "user": target.user,
        "identity_files": list(target.identity_files),
        "jump": hops,
        "sources": sources,
    }
