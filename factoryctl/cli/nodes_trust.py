"""`factoryctl nodes trust` (record host keys the operator confirmed) and `nodes check` (diagnose every step).

Trust never happens silently: the fingerprints are shown, and keys are recorded only after a "yes" at the prompt or
with `--yes` (for scripts that got the fingerprints out of band). A changed key additionally needs `--replace`, and
so does a key of a type not recorded for a host that has keys of other types recorded: a man in the middle may offer
only a type that was never recorded, so `--yes` alone must not record it (as `ssh` warns about it). A `@revoked` key
is never recorded. Without a terminal or `--yes` nothing is recorded, so a cron job cannot trust. Those rules are
transport/trust.py's (`plan_trust`, shared with any other front end); this module scans, asks and prints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from factoryctl.cli import context
from factoryctl.cli.options import DOCUMENT_NO_HEADER_OPTION, DOCUMENT_OUTPUT_OPTION, FANOUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, emit, render_listing
from factoryctl.errors import ExitCode, NodeError, most_severe

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.diagnose import Diagnosis, ScannedKey, Step
    from factoryctl.transport.ssh import ServerKey, SshOptions
    from factoryctl.transport.trust import HostKeyDecision, TrustPlan

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
        keepalive_s=float(config.settings.ssh.keepalive_s),
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
        if local and not context.global_options(ctx)[1]:  # a note, not a warning: `-q` drops it (docs/cli.md)
            from factoryctl.cli.render import fold

            sys.stderr.write(f"factoryctl: skipped {fold(local)}: the local transport has no host key.\n")
        specs = [s for s in specs if s.transport == "ssh"]
    return config, _options(config, timeout), specs


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


def _decision_item(decision: HostKeyDecision) -> dict[str, Any]:
    """The JSON item of a decision's key; a jump host's names the nodes behind it, folded (`n[1-3]`)."""
    from factoryctl.cli.render import fold

    behind = fold(decision.nodes) if len(decision.specs) > 1 else None
    return _trust_item(decision.specs[0], decision.scanned.key, decision.scanned.jump_host, behind)


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


def _record(pending: list[HostKeyDecision], items: dict[HostKeyDecision, dict[str, Any]]) -> int:
    """Write the confirmed keys (`trust.record_keys`) and show their items trusted; how many keys were written."""
    from factoryctl.transport.trust import record_keys

    written = record_keys(pending)
    for decision in pending:
        items[decision].update(recorded=True, status="trusted")
    return written


def _keys_line(pending: list[HostKeyDecision]) -> str:
    """`2 unknown host keys`, `1 changed host key for 2 nodes`, `3 host keys (2 unknown, 1 changed)`.

    Counted as `_record` writes them, once per known_hosts line, and named by what they are: only a key that will be
    recorded is counted, and a changed one only with --replace (else it is refused, not pending).
    """
    from factoryctl.transport.known_hosts import HostKeyStatus
    from factoryctl.transport.trust import known_hosts_lines, nodes_of

    keys, nodes = known_hosts_lines(pending), len(nodes_of(pending))
    changed = known_hosts_lines(d for d in pending if d.scanned.key.status is HostKeyStatus.changed)
    kind = "changed " if changed == keys else "unknown " if not changed else ""
    line = f"{keys} {kind}host key{'s' * (keys != 1)}"
    if not kind:
        line += f" ({keys - changed} unknown, {changed} changed)"
    return line + (f" for {nodes} nodes" if nodes != keys else "")


def _refused_line(refused: list[HostKeyDecision]) -> str:
    """The line before the question naming the keys it does not ask about: changed, or of a type not recorded.

    Their errors come after the answer; without this line "Record 8 keys?" read as if they were among the 8.
    """
    from factoryctl.cli.render import fold
    from factoryctl.transport.known_hosts import HostKeyStatus

    changed = [n for d in refused if d.scanned.key.status is HostKeyStatus.changed for n in d.nodes]
    other = [n for d in refused if d.scanned.key.status is HostKeyStatus.unknown and d.other_types for n in d.nodes]
    parts = [f"the CHANGED host key of {fold(changed)}"] if changed else []
    parts += [f"the key of a type not recorded for {fold(other)}"] if other else []
    return f"Not recorded without --replace (errors below): {'; '.join(parts)}.\n" if parts else ""


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


def _shown(decision: HostKeyDecision, item: dict[str, Any]) -> dict[str, Any]:
    """A key's table line: a jump host's key named as one, and for an unknown key the other key types recorded."""
    line = {**item, "node": f"jump host of {item['node']}"} if decision.scanned.jump_host else dict(item)
    if line["status"] == "unknown" and decision.other_types:
        line["status"] = f"unknown ({', '.join(decision.other_types)} recorded)"
    return line


def _question(pending: list[HostKeyDecision], refused: list[HostKeyDecision]) -> str:
    """The question before recording, after OpenSSH's warning for each key of a type not recorded for its host.

    A changed key (`--replace`) removes the recorded one: each is named with the key it replaces, and the question
    says that keys are removed, not only added. The `refused` keys (no --replace) are named first: not asked about.
    """
    from factoryctl.transport.known_hosts import HostKeyStatus
    from factoryctl.transport.ssh_handshake import OTHER_TYPES_WARNING

    warning = OTHER_TYPES_WARNING[0].upper() + OTHER_TYPES_WARNING[1:]
    warnings = [f"WARNING: {d.where} offers {d.scanned.key.key_type} {d.scanned.key.fingerprint}; recorded for it:"
                f" {', '.join(d.other_types)}. {warning}. The new key is added and they are kept.\n"
                for d in pending if d.other_types]  # fmt: skip
    changed = [d for d in pending if d.scanned.key.status is HostKeyStatus.changed]
    replacing = [f"{d.where}: the recorded {d.scanned.key.key_type} key {', '.join(d.scanned.key.recorded)} is removed"
                 f" from {d.scanned.known_hosts} and {d.scanned.key.fingerprint} recorded instead.\n"
                 for d in changed]  # fmt: skip
    question = f"Record {_keys_line(pending)}"
    if changed:
        question += f", removing the {len(changed)} recorded key{'s' * (len(changed) != 1)} they replace"
    return "".join(warnings + replacing) + _refused_line(refused) + question + "?"


def _show_and_record(
    plan: TrustPlan,
    items: dict[HostKeyDecision, dict[str, Any]],
    yes: bool,
    output: OutputFormat,
    no_header: bool,
    quiet: bool,
) -> list[NodeError]:
    """Show one pass's keys (as a table), record its pending keys once confirmed; the nodes' errors if they are not.

    The table's closing summary (`recorded 1 host key(s)`) goes to stderr, and not under -q: stdout keeps the table,
    and a provisioning script's `-q nodes trust --yes` prints nothing for cron to mail.
    """
    from factoryctl.transport.trust import nodes_of

    pending = plan.pending
    table = output in (OutputFormat.table, OutputFormat.wide)
    written = _record(pending, items) if pending and yes else None  # with --yes the table shows what is now trusted
    if table:
        emit(render_listing([_shown(d, items[d]) for d in plan.decisions], [], TRUST_COLUMNS, output, no_header))
    refused = [d for d in plan.decisions if d.refusal is not None]
    if written is None and pending and _confirm(_question(pending, refused), yes):
        written = _record(pending, items)
    if written is not None:
        if table and not quiet:
            sys.stderr.write(_recorded_line(written, len(nodes_of(pending))))
        return []
    return [NodeError(node, "host_key", f"{d.where} host key not recorded (not confirmed).",
                      "answer yes at the prompt, or pass --yes.") for d in pending for node in d.nodes]  # fmt: skip


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
    from factoryctl.transport.trust import nodes_behind_jump_hosts, plan_trust

    _config, options, specs = _target_nodes(ctx, target, timeout, ssh_only=True)
    items: list[dict[str, Any]] = []
    errors: list[NodeError] = []
    for _ in range(_MAX_PASSES):
        plan = plan_trust(_scan_keys(specs, options, fanout), replace)
        shown = {decision: _decision_item(decision) for decision in plan.decisions}
        items += shown.values()
        unconfirmed = _show_and_record(plan, shown, yes, output, no_header, context.global_options(ctx)[1])
        errors += plan.errors + unconfirmed
        behind = set() if unconfirmed else nodes_behind_jump_hosts(plan.pending)
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
    from factoryctl.transport.diagnose import check_node, failed_check

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
        for node, step in _fixes(diagnoses):
            emit(f"{node}: {step.step}: fix: {step.fix}\n")
    report_node_errors(e.as_report() for e in errors)
    raise typer.Exit(int(most_severe([e.exit_code for e in errors])) if errors else int(ExitCode.OK))


def _fixes(diagnoses: list[Diagnosis]) -> list[tuple[str, Step]]:
    """Each node's failed or warned steps with a fix, a fix given once per node (its first step to need it).

    A node without Python warns at the `python` step and fails at `agent` with the same fix: said once.
    """
    fixes: list[tuple[str, Step]] = []
    for diagnosis in diagnoses:
        said: set[str] = set()
        for step in diagnosis.steps:
            if step.fix and step.status in ("fail", "warn") and step.fix not in said:
                said.add(step.fix)
                fixes.append((diagnosis.node, step))
    return fixes


def register(nodes_app: typer.Typer) -> None:
    """Add `trust` and `check` to the `nodes` sub-app."""
    nodes_app.command("trust", short_help="Show and record each node's SSH host-key fingerprint.")(trust_command)
    nodes_app.command("check", short_help="Diagnose each node: DNS, TCP, SSH, auth, agent, NVML.")(check_command)
