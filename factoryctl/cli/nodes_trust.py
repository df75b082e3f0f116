"""`factoryctl nodes trust` (record host keys the operator confirmed) and `nodes check` (diagnose every step).

Trust never happens silently: the fingerprints are shown, and keys are recorded only after a "yes" at the prompt or
with `--yes` (for scripts that got the fingerprints out of band). A changed key additionally needs `--replace`;
a `@revoked` key is never recorded. Without a terminal or `--yes` nothing is recorded, so a cron job cannot trust.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from factoryctl.cli import context
from factoryctl.cli.render import (
    DOCUMENT_NO_HEADER_OPTION,
    DOCUMENT_OUTPUT_OPTION,
    FANOUT_OPTION,
    Column,
    OutputFormat,
    emit,
    render_listing,
)
from factoryctl.errors import ExitCode, NodeError, most_severe

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.ssh import ServerKey, SshOptions

T = TypeVar("T")

TRUST_COLUMNS = (
    Column("node", "NODE"),
    Column("address", "ADDRESS"),
    Column("key_type", "KEY"),
    Column("fingerprint", "FINGERPRINT"),
    Column("status", "STATUS"),
)
CHECK_COLUMNS = (Column("node", "NODE"), Column("step", "STEP"), Column("status", "STATUS"), Column("detail", "DETAIL"))
TIMEOUT_OPTION = context.timeout_option(15.0, help="Seconds per step and node (0.1-86400).")


def _options(config: FactoryConfig, timeout: float) -> SshOptions:
    from factoryctl.transport.ssh import SshOptions

    step = min(float(config.settings.ssh.connect_timeout_s), timeout)
    return SshOptions(
        connect_timeout_s=step,
        banner_timeout_s=step,
        auth_timeout_s=step,
        channel_timeout_s=timeout,
        remote_cache=config.settings.ssh.remote_cache_dir,
    )


def _on_each_node(
    ctx: typer.Context,
    target: str,
    timeout: float,
    fanout: int,
    work: Callable[[FactoryConfig, SshOptions, NodeSpec], T],
    ssh_only: bool = False,
    agent: bool = False,
) -> list[tuple[NodeSpec, T | NodeError]]:
    """Load the config, then run `work` on every node of `target` (only SSH ones with `ssh_only`) in parallel.

    `agent`: the work starts agents, so a bad `$FACTORYCTL_REMOTE_CACHE` is one config error before any node.
    """
    from factoryctl.transport.fanout import fan_out

    config = context.load(ctx)
    options = _options(config, timeout)
    specs = config.resolve_target(target)
    if ssh_only:
        local = [s.name for s in specs if s.transport != "ssh"]
        if local:
            from factoryctl.cli.render import fold

            sys.stderr.write(f"factoryctl: skipped {fold(local)}: the local transport has no host key.\n")
        specs = [s for s in specs if s.transport == "ssh"]
    if agent:
        from factoryctl.telemetry.poll import check_agent_cache

        check_agent_cache(specs)
    return fan_out(specs, lambda spec: work(config, options, spec), fanout)


def _trust_item(spec: NodeSpec, key: ServerKey) -> dict[str, Any]:
    return {
        "node": spec.name,
        "address": f"[{key.host}]:{key.port}",
        "key_type": key.key_type,
        "fingerprint": key.fingerprint,
        "status": key.status.value,
        "recorded_fingerprints": list(key.recorded),
        "recorded": False,
    }


def _confirm(question: str, yes: bool) -> bool:
    """Ask on stderr and read the answer from a terminal; anything but y/yes is no.

    Without a terminal (cron, a pipe such as `yes |`) nothing is recorded: scripts that have checked the
    fingerprints say so with `--yes`.
    """
    if yes:
        return True
    if not sys.stdin.isatty():
        sys.stderr.write(f"{question} no terminal to answer on: nothing recorded (pass --yes in scripts).\n")
        return False
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        return False
    return answer.strip().lower() in ("y", "yes")


Pending = list[tuple["NodeSpec", "ServerKey", dict[str, Any]]]


def _classify(
    scanned: list[tuple[NodeSpec, ServerKey | NodeError]], replace: bool
) -> tuple[list[dict[str, Any]], list[NodeError], Pending]:
    """Rows to show, refusals (revoked; changed without --replace) and the keys waiting for confirmation."""
    from factoryctl.transport.known_hosts import HostKeyStatus

    items: list[dict[str, Any]] = []
    errors: list[NodeError] = []
    pending: Pending = []
    for spec, found in scanned:
        if isinstance(found, NodeError):
            errors.append(found)
            continue
        item = _trust_item(spec, found)
        items.append(item)
        if found.status is HostKeyStatus.revoked:
            errors.append(NodeError(spec.name, "host_key", f"{item['address']} presents a REVOKED key; not recorded.",
                                    "the node needs a new host key."))  # fmt: skip
        elif found.status is HostKeyStatus.changed and not replace:
            errors.append(NodeError(spec.name, "host_key",
                                    f"host key CHANGED for {item['address']} (recorded {', '.join(found.recorded)})",
                                    "verify the new fingerprint out of band, then rerun with --replace."))  # fmt: skip
        elif found.status in (HostKeyStatus.unknown, HostKeyStatus.changed):
            pending.append((spec, found, item))
    return items, errors, pending


def _record(pending: Pending) -> int:
    """Write the confirmed keys; several inventory nodes may share one sshd, so each `[host]:port` key once.

    Returns how many keys were written (fewer than the nodes when some share an address).
    """
    from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts

    written = 0
    for spec, found, item in pending:
        known = KnownHosts(spec.known_hosts)
        if known.check(found.host, found.port, found.key_type, found.blob) is not HostKeyStatus.known:
            replace_old = found.status is HostKeyStatus.changed
            known.record(found.host, found.port, found.key_type, found.blob, replace=replace_old)
            written += 1
        item["recorded"] = True
        item["status"] = "trusted"
    return written


def _keys_line(pending: Pending) -> str:
    """`2 host key(s)`, or `1 host key(s) for 2 nodes`: counted as `_record` writes them, once per known_hosts line."""
    keys = {(spec.known_hosts, found.host, found.port, found.key_type, found.blob) for spec, found, _ in pending}
    return f"{len(keys)} host key(s)" + (f" for {len(pending)} nodes" if len(pending) != len(keys) else "")


def _recorded_line(written: int, nodes: int) -> str:
    """`recorded 1 host key(s) for 2 nodes` (nodes behind one address share a key), or `recorded 2 host key(s)`."""
    return f"recorded {written} host key(s)" + (f" for {nodes} nodes\n" if nodes != written else "\n")


def trust_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Record without asking (fingerprints checked out of band)."),
    replace: bool = typer.Option(False, "--replace", help="Also replace keys that CHANGED (after verifying them)."),
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
    no_header: bool = DOCUMENT_NO_HEADER_OPTION,
    timeout: float = TIMEOUT_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """Show each node's SSH host-key fingerprint and record it in known_hosts (as `[host]:port`) once confirmed."""
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors
    from factoryctl.transport.diagnose import scan_host_key

    scanned = _on_each_node(
        ctx, target, timeout, fanout, lambda _config, options, spec: scan_host_key(spec, options), ssh_only=True
    )
    items, errors, pending = _classify(scanned, replace)
    table = output in (OutputFormat.table, OutputFormat.wide)
    written = _record(pending) if pending and yes else None  # with --yes the table shows what is now trusted
    if table:
        emit(render_listing(items, [], TRUST_COLUMNS, output, no_header))
    if written is None and pending and _confirm(f"Record {_keys_line(pending)} shown as unknown/changed above?", yes):
        written = _record(pending)
    if written is not None:
        if table:
            emit(_recorded_line(written, len(pending)))
    else:
        for spec, _found, item in pending:
            errors.append(NodeError(spec.name, "host_key", f"{item['address']}: not recorded (not confirmed).",
                                    "answer yes at the prompt, or pass --yes."))  # fmt: skip
    if output in (OutputFormat.json, OutputFormat.yaml):
        emit(render_listing(items, [e.as_json() for e in errors], TRUST_COLUMNS, output, no_header))
    report_node_errors((e.as_report() for e in errors), ERROR_HINTS)
    raise typer.Exit(int(most_severe([e.exit_code for e in errors])))


def check_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
    no_header: bool = DOCUMENT_NO_HEADER_OPTION,
    timeout: float = TIMEOUT_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """Diagnose each node step by step: DNS, TCP, SSH banner, host key, auth, Python, agent, driver, NVML."""
    from factoryctl.cli.render import report_node_errors
    from factoryctl.transport.diagnose import Diagnosis, check_node

    outcomes = _on_each_node(
        ctx,
        target,
        timeout,
        fanout,
        lambda config, options, spec: check_node(spec, config.name, options, timeout, config.state_dir),
        agent=True,
    )
    diagnoses: list[Diagnosis] = []
    errors: list[NodeError] = []
    for _spec, outcome in outcomes:
        if isinstance(outcome, NodeError):
            errors.append(outcome)
            continue
        diagnoses.append(outcome)
        if outcome.error is not None:
            errors.append(outcome.error)
    if output in (OutputFormat.json, OutputFormat.yaml):
        items = [{"node": d.node, "ok": d.ok, "steps": [s.as_json() for s in d.steps]} for d in diagnoses]
        emit(render_listing(items, [e.as_json() for e in errors], CHECK_COLUMNS, output, no_header))
    else:
        rows = [{"node": d.node, **s.as_json()} for d in diagnoses for s in d.steps]
        emit(render_listing(rows, [], CHECK_COLUMNS, output, no_header))
        fixes = [(d.node, s) for d in diagnoses for s in d.steps if s.fix and s.status in ("fail", "warn")]
        for node, step in fixes:
            emit(f"{node}: {step.step}: fix: {step.fix}\n")
    report_node_errors(e.as_report() for e in errors)
    raise typer.Exit(int(most_severe([e.exit_code for e in errors])) if errors else int(ExitCode.OK))


def register(nodes_app: typer.Typer) -> None:
    """Add `trust` and `check` to the `nodes` sub-app."""
    nodes_app.command("trust")(trust_command)
    nodes_app.command("check")(check_command)
