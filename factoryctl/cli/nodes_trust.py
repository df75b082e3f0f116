"""`factoryctl nodes trust` (record host keys the operator confirmed) and `nodes check` (diagnose every step).

Trust never happens silently: the fingerprints are shown, and keys are recorded only after a "yes" at the prompt or
with `--yes` (for scripts that got the fingerprints out of band). A changed key additionally needs `--replace`, and
so does a key of a type not recorded for a host that has keys of other types recorded: a man in the middle may offer
only a type that was never recorded, so `--yes` alone must not record it (as `ssh` warns about it). A `@revoked` key
is never recorded. Without a terminal or `--yes` nothing is recorded, so a cron job cannot trust.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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
    from factoryctl.transport.diagnose import ScannedKey
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
    agent: bool = False,
) -> list[tuple[NodeSpec, T | NodeError]]:
    """Load the config, then run `work` on every node of `target` in parallel.

    `agent`: the work starts agents, so a bad `$FACTORYCTL_REMOTE_CACHE` is one config error before any node.
    """
    from factoryctl.transport.fanout import fan_out

    config, options, specs = _target_nodes(ctx, target, timeout)
    if agent:
        from factoryctl.telemetry.poll import check_agent_cache

        check_agent_cache(specs)
    return fan_out(specs, lambda spec: work(config, options, spec), fanout)


def _target_nodes(
    ctx: typer.Context, target: str, timeout: float, ssh_only: bool = False
) -> tuple[FactoryConfig, SshOptions, list[NodeSpec]]:
    """The config, the SSH options of `timeout`, and the nodes of `target` (only SSH ones with `ssh_only`)."""
    config = context.load(ctx)
    specs = config.resolve_target(target)
    if ssh_only:
        local = [s.name for s in specs if s.transport != "ssh"]
        if local:
            from factoryctl.cli.render import fold

            sys.stderr.write(f"factoryctl: skipped {fold(local)}: the local transport has no host key.\n")
        specs = [s for s in specs if s.transport == "ssh"]
    return config, _options(config, timeout), specs


@dataclass
class _KeyRow:
    """One row of `nodes trust`: a key, the nodes whose way it stands in (one, or all behind a jump host), its item."""

    specs: list[NodeSpec]
    scanned: ScannedKey
    item: dict[str, Any] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        """The names of the nodes."""
        return [spec.name for spec in self.specs]

    @property
    def where(self) -> str:
        """`[host]:port`, named as a jump host's when it is one."""
        address = f"[{self.scanned.key.host}]:{self.scanned.key.port}"
        return address if self.scanned.jump_host is None else f"jump host {self.scanned.jump_host} ({address})"

    @property
    def other_types(self) -> tuple[str, ...]:
        """The key types recorded for the host when this key's type is not: such a key needs `--replace`."""
        from factoryctl.transport.known_hosts import HostKeyStatus

        key = self.scanned.key
        return key.other_types if key.status is HostKeyStatus.unknown else ()


def _trust_item(
    spec: NodeSpec, key: ServerKey, jump_host: str | None = None, node: str | None = None
) -> dict[str, Any]:
    """The JSON item of `key`: `spec`'s own key, or (`jump_host`) the key of the jump host of the nodes `node` names."""
    return {
        "node": node or spec.name,
        "address": f"[{key.host}]:{key.port}",
        "key_type": key.key_type,
        "fingerprint": key.fingerprint,
        "status": key.status.value,
        "recorded_fingerprints": list(key.recorded),
        "other_types_recorded": list(key.other_types),
        "recorded": False,
        "jump_host": jump_host,
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


def _classify(
    scanned: list[tuple[NodeSpec, ScannedKey | NodeError]], replace: bool
) -> tuple[list[_KeyRow], list[NodeError], list[_KeyRow]]:
    """Rows to show, refusals (revoked; changed without --replace) and the rows whose key waits for confirmation.

    A jump host's key is one row for all the nodes behind it.
    """
    from factoryctl.cli.render import fold
    from factoryctl.transport.known_hosts import HostKeyStatus

    rows: dict[tuple[str, ...], _KeyRow] = {}
    errors: list[NodeError] = []
    for spec, found in scanned:
        if isinstance(found, NodeError):
            errors.append(found)
        elif found.jump_host is None:
            rows[("node", spec.name)] = _KeyRow([spec], found)
        else:
            key = (found.jump_host, found.known_hosts, found.key.key_type, found.key.fingerprint)
            rows.setdefault(key, _KeyRow([], found)).specs.append(spec)
    pending: list[_KeyRow] = []
    for row in rows.values():
        behind = fold(row.nodes) if len(row.specs) > 1 else None
        row.item = _trust_item(row.specs[0], row.scanned.key, row.scanned.jump_host, behind)
        refusal = _refusal(row, replace)
        if refusal is not None:
            errors += [NodeError(node, "host_key", *refusal) for node in row.nodes]
        elif row.scanned.key.status in (HostKeyStatus.unknown, HostKeyStatus.changed):
            pending.append(row)
    return list(rows.values()), errors, pending


def _refusal(row: _KeyRow, replace: bool) -> tuple[str, str] | None:
    """Why `row`'s key is not recorded (message, hint): revoked; changed or of a type not recorded, without --replace."""
    from factoryctl.transport.known_hosts import HostKeyStatus
    from factoryctl.transport.ssh_handshake import OTHER_TYPES, OTHER_TYPES_WARNING

    presented = row.scanned.key
    if presented.status is HostKeyStatus.revoked:
        host = "the node" if row.scanned.jump_host is None else "the jump host"
        return f"{row.where} presents a REVOKED key; not recorded.", f"{host} needs a new host key."
    if replace:
        return None
    if presented.status is HostKeyStatus.changed:
        return (
            f"host key CHANGED for {row.where} (recorded {', '.join(presented.recorded)})",
            "verify the new fingerprint out of band, then rerun with --replace.",
        )
    if row.other_types:
        return (
            f"unknown host key for {row.where}: {presented.key_type} {presented.fingerprint}; "
            f"{OTHER_TYPES} ({', '.join(row.other_types)})",
            f"{OTHER_TYPES_WARNING}; verify the new fingerprint out of band, then rerun with --replace "
            "(it adds the key and keeps the recorded ones).",
        )
    return None


def _record(pending: list[_KeyRow]) -> int:
    """Write the confirmed keys; several inventory nodes may share one sshd, so each `[host]:port` key once.

    Returns how many keys were written (fewer than the nodes when some share an address).
    """
    from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts
    from factoryctl.transport.ssh_config import hashes_known_hosts

    written = 0
    for row in pending:
        found = row.scanned.key
        known = KnownHosts(row.scanned.known_hosts)
        if known.check(found.host, found.port, found.key_type, found.blob) is not HostKeyStatus.known:
            replace_old = found.status is HostKeyStatus.changed
            hashed = hashes_known_hosts(row.specs[0], row.scanned.jump_host)  # HashKnownHosts, as ssh -G says
            known.record(found.host, found.port, found.key_type, found.blob, replace=replace_old, hashed=hashed)
            written += 1
        row.item["recorded"] = True
        row.item["status"] = "trusted"
    return written


def _count_nodes(pending: list[_KeyRow]) -> int:
    return len({node for row in pending for node in row.nodes})


def _keys_line(pending: list[_KeyRow]) -> str:
    """`2 host key(s)`, or `1 host key(s) for 2 nodes`: counted as `_record` writes them, once per known_hosts line."""
    keys = {(r.scanned.known_hosts, r.scanned.key.host, r.scanned.key.port, r.scanned.key.key_type, r.scanned.key.blob)
            for r in pending}  # fmt: skip
    nodes = _count_nodes(pending)
    return f"{len(keys)} host key(s)" + (f" for {nodes} nodes" if nodes != len(keys) else "")


def _recorded_line(written: int, nodes: int) -> str:
    """`recorded 1 host key(s) for 2 nodes` (nodes behind one address share a key), or `recorded 2 host key(s)`."""
    return f"recorded {written} host key(s)" + (f" for {nodes} nodes\n" if nodes != written else "\n")


def _scan_keys(
    specs: list[NodeSpec], options: SshOptions, fanout: int
) -> list[tuple[NodeSpec, ScannedKey | NodeError]]:
    """One pass: each node's own key, or the key of the first jump host on its way that is not known yet."""
    from factoryctl.transport.diagnose import JumpHostKeys, scan_host_key
    from factoryctl.transport.fanout import fan_out

    jump_keys = JumpHostKeys(options)
    return fan_out(specs, lambda spec: scan_host_key(spec, options, jump_keys), fanout)


def _shown(row: _KeyRow) -> dict[str, Any]:
    """`row`'s table line: a jump host's key named as one, and for an unknown key the other key types recorded."""
    item = {**row.item, "node": f"jump host of {row.item['node']}"} if row.scanned.jump_host else dict(row.item)
    if item["status"] == "unknown" and row.other_types:
        item["status"] = f"unknown ({', '.join(row.other_types)} recorded)"
    return item


def _question(pending: list[_KeyRow]) -> str:
    """The question before recording, after OpenSSH's warning for each key of a type not recorded for its host."""
    from factoryctl.transport.ssh_handshake import OTHER_TYPES_WARNING

    warning = OTHER_TYPES_WARNING[0].upper() + OTHER_TYPES_WARNING[1:]
    warnings = [f"WARNING: {row.where} offers {row.scanned.key.key_type} {row.scanned.key.fingerprint}; recorded for it:"
                f" {', '.join(row.other_types)}. {warning}. The new key is added and they are kept.\n"
                for row in pending if row.other_types]  # fmt: skip
    return "".join(warnings) + f"Record {_keys_line(pending)} shown as unknown/changed above?"


def _show_and_record(
    rows: list[_KeyRow], pending: list[_KeyRow], yes: bool, output: OutputFormat, no_header: bool, quiet: bool
) -> list[NodeError]:
    """Show one pass's rows (as a table), record its pending keys once confirmed; the nodes' errors if they are not.

    The table's closing summary (`recorded 1 host key(s)`) goes to stderr, and not under -q: stdout keeps the table,
    and a provisioning script's `-q nodes trust --yes` prints nothing for cron to mail.
    """
    table = output in (OutputFormat.table, OutputFormat.wide)
    written = _record(pending) if pending and yes else None  # with --yes the table shows what is now trusted
    if table:
        emit(render_listing([_shown(r) for r in rows], [], TRUST_COLUMNS, output, no_header))
    if written is None and pending and _confirm(_question(pending), yes):
        written = _record(pending)
    if written is not None:
        if table and not quiet:
            sys.stderr.write(_recorded_line(written, _count_nodes(pending)))
        return []
    return [NodeError(node, "host_key", f"{row.where}: not recorded (not confirmed).",
                      "answer yes at the prompt, or pass --yes.") for row in pending for node in row.nodes]  # fmt: skip


#: Passes of `nodes trust` at most: one per jump host of the longest chain ssh_config.py accepts, and the node's own.
_MAX_PASSES = 10


def trust_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    yes: bool = typer.Option(False, "--yes", "-y", help="Record without asking (fingerprints checked out of band)."),
    replace: bool = typer.Option(
        False,
        "--replace",
        help="Also record keys that CHANGED (replacing the old key of that type) or are of a type not recorded for a "
        "host that has other types recorded (after verifying them).",
    ),
    output: OutputFormat = DOCUMENT_OUTPUT_OPTION,
    no_header: bool = DOCUMENT_NO_HEADER_OPTION,
    timeout: float = TIMEOUT_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """Show each node's SSH host-key fingerprint and record it in known_hosts (as `[host]:port`) once confirmed.

    A node behind a jump host whose key is not known yet shows the jump host's key first; once that is recorded,
    the node is scanned again through the jump host for its own key (as `ssh -J` asks for one, then the other).
    """
    from factoryctl.cli.listing import ERROR_HINTS
    from factoryctl.cli.render import report_node_errors

    _config, options, specs = _target_nodes(ctx, target, timeout, ssh_only=True)
    items: list[dict[str, Any]] = []
    errors: list[NodeError] = []
    for _ in range(_MAX_PASSES):
        rows, refused, pending = _classify(_scan_keys(specs, options, fanout), replace)
        items += [row.item for row in rows]
        unconfirmed = _show_and_record(rows, pending, yes, output, no_header, context.global_options(ctx)[1])
        errors += refused + unconfirmed
        behind = set() if unconfirmed else {n for row in pending if row.scanned.jump_host for n in row.nodes}
        specs = [spec for spec in specs if spec.name in behind]  # their jump host is trusted now: their own key next
        if not specs:
            break
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
    from factoryctl.transport.diagnose import Diagnosis, check_node, failed_check

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
        diagnosis = failed_check(outcome) if isinstance(outcome, NodeError) else outcome  # every node is listed
        diagnoses.append(diagnosis)
        if diagnosis.error is not None:
            errors.append(diagnosis.error)
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
    nodes_app.command("trust", short_help="Show and record each node's SSH host-key fingerprint.")(trust_command)
    nodes_app.command("check", short_help="Diagnose each node: DNS, TCP, SSH, auth, agent, NVML.")(check_command)
