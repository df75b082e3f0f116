"""Explicit power-limit requests (`power set / reset`): validated on every reachable GPU first, then applied.

An explicit request outside a GPU's min/max is refused with exit 2 and changes nothing, as `nvidia-smi -pl` does;
with `--clamp` it is clamped instead, and the clamp is recorded. A node that cannot be reached (or whose driver does
not answer) is reported and skipped rather than blocking the others: in a large fleet one node is always down, and
`power reset` and every other fan-out command behave the same way. Every change goes to the audit log with before
and after, whoever made it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError, UsageError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.who import login_name
from factoryctl.telemetry.poll import agent_session, check_agent_cache, fan_out, poll_nodes

if TYPE_CHECKING:
    from factoryctl.store.sqlite import Store


@dataclass(frozen=True)
class LimitChange:
    """One GPU's limit before and after a request."""

    node: str
    gpu: int
    before_w: float | None
    enforced_w: float
    clamped: bool


def check_watts(watts: float | None) -> None:
    """Refuse (UsageError, before any node is contacted) a limit that is not a finite number of watts."""
    if watts is not None and not math.isfinite(watts):
        raise UsageError(
            f"--watts must be a finite number of watts, not {watts:g}; nothing was changed.",
            "give the limit in watts, e.g. --watts 300 (see `factoryctl gpus` for each GPU's range).",
        )


def check_range(samples: Sequence[NodeSample], gpus: list[int] | None, watts: float) -> None:
    """Refuse the request (UsageError, nothing changed) when any addressed GPU cannot take `watts`."""
    for sample in samples:
        for gpu in sample.gpus:
            if gpus is not None and gpu.index not in gpus:
                continue
            low, high = gpu.power_limit_min_w, gpu.power_limit_max_w
            if low is not None and high is not None and not low <= watts <= high:
                raise UsageError(
                    f"{watts:g} W is outside {sample.node}/{gpu.index}'s power-limit range of {low:g}-{high:g} W; "
                    "nothing was changed.",
                    f"pick a value in {low:g}-{high:g} W, or pass --clamp to clamp to each GPU's range.",
                )


def check_gpus(samples: Sequence[NodeSample], gpus: list[int] | None) -> None:
    """Refuse the request (UsageError, nothing changed) when a node lacks one of the addressed GPUs."""
    for sample in samples:
        have = sorted(gpu.index for gpu in sample.gpus)
        missing = sorted(set(gpus or ()) - set(have))
        if missing:
            has = f"GPUs {have[0]}-{have[-1]}" if have else "no GPUs"
            raise UsageError(
                f"{sample.node} has no GPU {missing[0]} (it has {has}); nothing was changed.",
                f"see `factoryctl gpus {sample.node}`, or address fewer nodes.",
            )


def _validate(
    config: FactoryConfig, nodes: list[NodeSpec], gpus: list[int] | None, watts: float | None, timeout: float
) -> tuple[list[NodeSpec], list[NodeError]]:
    """Read the reachable nodes' GPUs and refuse the request if one lacks a GPU or (given `watts`) its range.

    Returns the nodes that answered and the errors of those that did not.
    """
    polled = poll_nodes(config, nodes, timeout)
    failed = {error.node for error in polled.errors}
    samples = [sample for sample in polled.samples if sample.node not in failed]
    check_gpus(samples, gpus)
    if watts is not None:
        check_range(samples, gpus, watts)
    return [node for node in nodes if node.name not in failed], list(polled.errors)


def apply_limit(
    config: FactoryConfig,
    nodes: Sequence[NodeSpec],
    gpus: list[int] | None,
    watts: float | None,
    clamp: bool,
    timeout: float,
) -> tuple[list[LimitChange], list[NodeError]]:
    """Set (or with `watts=None` reset to default) the limits on every node that answers.

    Every addressed GPU of the reachable nodes must exist, and unless clamping every range must take the value,
    before anything changes; a node that cannot be read is reported in the errors and left alone. The audit log is
    opened before any node is contacted: a store that cannot be written refuses the request with nothing changed,
    rather than leaving changes nobody recorded.
    """
    from factoryctl.store import open_store

    check_watts(watts)
    check_agent_cache(nodes)
    store = open_store(config.store_path)
    try:
        targets, errors = list(nodes), list[NodeError]()
        range_checked = watts is not None and not clamp
        if range_checked or gpus is not None:
            targets, errors = _validate(config, targets, gpus, watts if range_checked else None, timeout)
        changes: list[LimitChange] = []
        for _, outcome in fan_out(targets, lambda node: _change(config, node, gpus, watts, clamp, timeout)):
            if isinstance(outcome, NodeError):
                errors.append(outcome)
            else:
                changes.extend(outcome)
        record_audit(store, changes, "reset" if watts is None else "set")
    finally:
        store.close()
    return changes, errors


def _change(
    config: FactoryConfig, node: NodeSpec, gpus: list[int] | None, watts: float | None, clamp: bool, timeout: float
) -> list[LimitChange]:
    """Ask one node's agent to set (or reset) the limits; its answers, GPU by GPU."""
    with agent_session(node, config, timeout) as session:
        if watts is None:
            answers = session.request("reset_power_limit", timeout=timeout, gpus=gpus).get("gpus") or []
        else:
            answers = session.set_power_limit(watts, gpus, clamp, timeout)
    return [
        LimitChange(node.name, int(a["index"]), a.get("before_w"), float(a["enforced_w"]), bool(a.get("clamped")))
        for a in answers
    ]


def record_audit(store: Store, changes: Sequence[LimitChange], action: str, reason: str | None = None) -> None:
    """Write every change to the store's audit log, with before and after.

    The limits are already changed when this runs: a failure says so, so nobody takes it for a refusal.
    """
    if not changes:
        return
    from factoryctl.store.rows import AuditEntry
    from factoryctl.store.sqlite import StoreError

    now, user = time.time(), login_name()
    entries = [
        AuditEntry(now, c.node, c.gpu, action, c.before_w, c.enforced_w, c.clamped, user, reason) for c in changes
    ]
    try:
        store.add_audit(entries)
    except StoreError as error:
        gpus = f"{len(changes)} GPU{'' if len(changes) == 1 else 's'}"
        raise StoreError(
            f"the power limits of {gpus} were changed, but the audit log could not record it: {error.message}",
            hint="see `factoryctl gpus` for the limits now in force; then check the store (`controller status`).",
        ) from error
