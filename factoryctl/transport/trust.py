"""Which scanned host keys may be recorded in known_hosts, which are refused and why: the policy of `nodes trust`.

Trust is a security decision, so it is made once, here, for whoever offers it (the CLI's `nodes trust`, a
dashboard, the controller), and the callers only ask the operator and print. `plan_trust` is pure: from the keys
the nodes presented (`diagnose.scan_host_key`) it decides, without IO,
- a `@revoked` key is never recorded;
- a CHANGED key, or a key of a type not recorded for a host that has keys of other types recorded (a man in the
  middle may offer only a type that was never recorded, as `ssh` warns), is recorded only with `replace`;
- an unknown key waits for the operator's confirmation; a key known_hosts already vouches for needs nothing;
- a jump host's key is one decision for all the nodes behind it, however many of them presented it.
`record_keys` then writes the confirmed keys, each known_hosts line once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError

if TYPE_CHECKING:
    from factoryctl.model.inventory import NodeSpec
    from factoryctl.transport.diagnose import ScannedKey


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a key is not recorded, as a node's error says it: the sentence and what to do about it."""

    message: str
    hint: str


@dataclasses.dataclass(frozen=True, eq=False)  # one decision is one object: callers key their output by it
class HostKeyDecision:
    """One scanned key, the nodes whose way it stands in (one, or all behind a jump host), and what is to be done."""

    specs: tuple[NodeSpec, ...]
    scanned: ScannedKey
    #: Why the key must not be recorded; None when it may be.
    refusal: Refusal | None = None

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
        """The key types recorded for the host when this key's type is not: such a key needs `replace`."""
        from factoryctl.transport.known_hosts import HostKeyStatus

        key = self.scanned.key
        return key.other_types if key.status is HostKeyStatus.unknown else ()

    @property
    def awaits_confirmation(self) -> bool:
        """Whether the key is to be recorded once the operator confirms it: not refused, and not known already."""
        from factoryctl.transport.known_hosts import HostKeyStatus

        return self.refusal is None and self.scanned.key.status in (HostKeyStatus.unknown, HostKeyStatus.changed)


@dataclasses.dataclass(frozen=True)
class TrustPlan:
    """What one scan of the nodes leads to: every key to show, the nodes that could not be scanned, and the refusals."""

    #: Every key scanned, in the nodes' order; a jump host's key once for all the nodes behind it.
    decisions: tuple[HostKeyDecision, ...]
    #: The nodes whose key could not be scanned (unreachable, a jump host that failed).
    scan_errors: tuple[NodeError, ...] = ()

    @property
    def refused(self) -> list[NodeError]:
        """A `host_key` error for each node of each refused key."""
        return [
            NodeError(node, "host_key", decision.refusal.message, decision.refusal.hint)
            for decision in self.decisions
            if decision.refusal is not None
            for node in decision.nodes
        ]

    @property
    def errors(self) -> list[NodeError]:
        """The nodes' errors: those that could not be scanned, then those whose key is refused."""
        return [*self.scan_errors, *self.refused]

    @property
    def pending(self) -> list[HostKeyDecision]:
        """The keys to record once confirmed."""
        return [decision for decision in self.decisions if decision.awaits_confirmation]


def plan_trust(scanned: Iterable[tuple[NodeSpec, ScannedKey | NodeError]], replace: bool) -> TrustPlan:
    """Decide, without IO, what to do with each scanned key; `replace`: CHANGED keys and keys of new types may go in.

    The keys a jump host presented to several nodes (the same known_hosts, type and fingerprint) are one decision.
    """
    grouped: dict[tuple[str | None, ...], tuple[list[NodeSpec], ScannedKey]] = {}
    scan_errors: list[NodeError] = []
    for spec, found in scanned:
        if isinstance(found, NodeError):
            scan_errors.append(found)
        elif found.jump_host is None:
            grouped[("node", spec.name)] = ([spec], found)
        else:
            key = (found.jump_host, found.known_hosts, found.key.key_type, found.key.fingerprint)
            grouped.setdefault(key, ([], found))[0].append(spec)
    decisions = [HostKeyDecision(tuple(specs), found) for specs, found in grouped.values()]
    decided = tuple(dataclasses.replace(d, refusal=_refusal(d, replace)) for d in decisions)
    return TrustPlan(decided, tuple(scan_errors))


def _refusal(decision: HostKeyDecision, replace: bool) -> Refusal | None:
    """Why `decision`'s key is not to be recorded: revoked; changed or of a type not recorded, without `replace`."""
    from factoryctl.transport.hints import OTHER_TYPES, OTHER_TYPES_WARNING, changed_key_message, host_key_hint
    from factoryctl.transport.known_hosts import HostKeyStatus

    presented = decision.scanned.key
    if presented.status is HostKeyStatus.revoked:
        host = "the node" if decision.scanned.jump_host is None else "the jump host"
        return Refusal(f"{decision.where} presents a REVOKED key; not recorded.", f"{host} needs a new host key.")
    if replace:
        return None
    if presented.status is HostKeyStatus.changed:  # worded as every other command that meets it words it
        message = changed_key_message(decision.where, presented.key_type, presented.fingerprint, presented.recorded)
        return Refusal(message, host_key_hint(decision.nodes[0], message, decision.scanned.known_hosts))
    if decision.other_types:
        return Refusal(
            f"unknown host key for {decision.where}: {presented.key_type} {presented.fingerprint}; "
            f"{OTHER_TYPES} ({', '.join(decision.other_types)})",
            f"{OTHER_TYPES_WARNING}; verify the new fingerprint out of band, then rerun with --replace "
            "(it adds the key and keeps the recorded ones).",
        )
    return None


def nodes_behind_jump_hosts(decisions: Iterable[HostKeyDecision]) -> set[str]:
    """The nodes whose key in `decisions` was their jump host's: once it is recorded, their own key is scanned next."""
    return {node for decision in decisions if decision.scanned.jump_host for node in decision.nodes}


def nodes_of(decisions: Iterable[HostKeyDecision]) -> set[str]:
    """Every node `decisions` stand for."""
    return {node for decision in decisions for node in decision.nodes}


def known_hosts_lines(decisions: Iterable[HostKeyDecision]) -> int:
    """How many known_hosts lines recording `decisions` takes: nodes behind one address share one (`record_keys`)."""
    return len({(d.scanned.known_hosts, d.scanned.key.host, d.scanned.key.port, d.scanned.key.key_type,
                 d.scanned.key.blob) for d in decisions})  # fmt: skip


def record_keys(confirmed: Sequence[HostKeyDecision]) -> int:
    """Write the confirmed keys to their known_hosts; several inventory nodes may share one sshd, so each line once.

    A CHANGED key replaces the recorded key of its type; a name is hashed where ~/.ssh/config says HashKnownHosts.
    Returns how many keys were written (fewer than the nodes when some share an address, none if already there).
    """
    from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts
    from factoryctl.transport.ssh_config import hashes_known_hosts

    written = 0
    for decision in confirmed:
        found = decision.scanned.key
        known = KnownHosts(decision.scanned.known_hosts)
        if known.check(found.host, found.port, found.key_type, found.blob) is not HostKeyStatus.known:
            replace_old = found.status is HostKeyStatus.changed
            hashed = hashes_known_hosts(decision.specs[0], decision.scanned.jump_host)  # as `ssh -G` says
            known.record(found.host, found.port, found.key_type, found.blob, replace=replace_old, hashed=hashed)
            written += 1
    return written
