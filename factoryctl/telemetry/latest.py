"""The latest state of the nodes as a live controller wrote it, for `nodes list` and `gpus` in milliseconds.

Live means: a process holds the controller lock beside the store, and the newest stored sample is younger than three
sampling intervals. Otherwise the answer is None and the caller polls the nodes itself. Nodes the controller has not
reached are reported as down with the reason it recorded, exactly as a poll would report them.

A live store says nothing of each node's row (the controller may have stopped watching a node another factory.yaml
sharing the state_dir still lists). So each row is judged by its age too, as the controller judges silence (`down`
after three missed samples), allowing for a node's clock being off by up to `CLOCK_OFF_S`: such a node is polled by
the caller, or reported down.

A power-limit change is not in the store until the controller's next sample of its node: `power set` then `gpus`
showed the old limit. So a node with a confirmed change in the audit log that its stored sample may not show (the
sample is not clearly later, and its GPU's limit is not the change's `after`) is polled by the caller too: the
limit is read from the driver, not assumed from the audit log.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from factoryctl.config import FactoryConfig
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.model.telemetry import NodeSample
from factoryctl.store.lock import controller_is_running
from factoryctl.store.rows import CONFIRMED, AuditEntry, NodeState
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.health import silent_for_down_s
from factoryctl.telemetry.node_clock import CLOCK_OFF_S
from factoryctl.telemetry.poll import PollResult

LIVE_INTERVALS = 3
#: At most this many audit entries are read to find changes not yet sampled (a few seconds of them: a policy
#: applied to 2,000 nodes of 8 GPUs writes 16,000).
AUDIT_LOOKBACK_ROWS = 100_000

_Latest = dict[str, tuple[NodeState, NodeSample | None]]


def _live_latest(config: FactoryConfig, now: float) -> tuple[_Latest, set[str]] | None:
    """Each node's stored state and newest sample, and the nodes with a change not yet sampled (`_unsampled`).

    None unless a live controller writes the store.
    """
    try:
        if not config.store_path.exists() or not controller_is_running(config.state_dir):
            return None
    except OSError:  # a state_dir this user cannot search: no live store to read, so the caller polls the nodes
        return None
    try:
        store = Store(config.store_path, readonly=True)
    except StoreError:
        return None
    try:
        newest = store.samples_stored_at()  # on the controller's clock: a node's may be ahead
        if newest is None or now - newest > LIVE_INTERVALS * config.interval_s:
            return None
        latest = {state.node: (state, sample) for state, sample in store.latest()}
        return latest, _unsampled(store, latest, now, config.interval_s)
    except StoreError:
        return None
    finally:
        store.close()


def read_live(
    config: FactoryConfig,
    nodes: Sequence[NodeSpec] | None = None,
    now: float | None = None,
    unknown: list[NodeSpec] | None = None,
) -> PollResult | None:
    """Samples of `nodes` (default: all) from the store when a live controller writes it, else None.

    A node the store has no record of (added to factory.yaml after the controller started, or not reached in its
    first seconds) is reported down as "not reached yet"; when `unknown` is given it is put there instead, left out
    of the result, for the caller to poll itself. So is a node whose row is older than the controller would let a
    node it watches be silent (`stale_for`): reported down when `unknown` is not given.
    """
    now = now if now is not None else time.time()
    live = _live_latest(config, now)
    if live is None:
        return None
    latest, unsampled = live
    samples: list[NodeSample] = []
    errors: list[NodeError] = []
    last_seen: dict[str, float] = {}
    for spec in nodes if nodes is not None else list(config.nodes.values()):
        state, sample = latest.get(spec.name, (None, None))
        stale = stale_for(state, now, config.interval_s) if state is not None else None
        if (state is None or stale is not None or spec.name in unsampled) and unknown is not None:
            unknown.append(spec)
            continue
        if state is not None and stale is not None:
            message = f"the controller has stored no sample from it for {stale:.0f} s (does it watch it?)."
            state = NodeState(spec.name, "down", state.since, state.last_seen, "timeout", message)
        if state is not None and sample is not None and state.state != "down":
            samples.append(NodeSample(**{**vars(sample), "state": state.state}))
            continue
        kind = (state.error if state else None) or "agent"
        message = _stored_message(state) or "the controller has not reached it yet."
        error = NodeError(spec.name, kind, message, stored_hint(spec, kind, message))
        errors.append(error)
        seen = state.last_seen if state and state.last_seen else now
        if state is not None and state.last_seen:
            last_seen[spec.name] = state.last_seen
        samples.append(NodeSample(node=spec.name, time=seen, state="down", error=kind, message=message))
    return PollResult(samples, errors, last_seen)


def _unsampled(store: Store, latest: _Latest, now: float, interval_s: float) -> set[str]:
    """The nodes whose newest confirmed power-limit change (per GPU) their stored sample may not show.

    A sample is taken to show a change when it is later by more than a node's clock may be off (`CLOCK_OFF_S`), or
    its GPU's limit is the change's `after` (to the milliwatt NVML counts in). Only changes since the oldest sample
    still fresh enough to be served are read: a staler node is polled anyway.
    """
    oldest_served = now - silent_for_down_s(interval_s) - CLOCK_OFF_S
    times = [sample.time for _, sample in latest.values() if sample is not None and sample.time >= oldest_served]
    if not times:
        return set()
    newest: dict[tuple[str, int | None], AuditEntry] = {}
    for entry in store.audit(min(times) - CLOCK_OFF_S, limit=AUDIT_LOOKBACK_ROWS):
        if entry.outcome == CONFIRMED:
            newest[entry.node, entry.gpu] = entry
    return {entry.node for entry in newest.values() if not _shows(latest.get(entry.node, (None, None))[1], entry)}


def _shows(sample: NodeSample | None, change: AuditEntry) -> bool:
    """Whether `sample` shows the power-limit `change` (see `_unsampled`)."""
    if sample is None:
        return True  # a node never sampled is polled, or reported down, already (`read_live`)
    if sample.time - CLOCK_OFF_S > change.time:
        return True
    gpu = next((g for g in sample.gpus if g.index == change.gpu), None)
    if gpu is None or gpu.power_limit_w is None or change.after_w is None:
        return False
    return round(gpu.power_limit_w * 1000) == round(change.after_w * 1000)


def _stored_message(state: NodeState | None) -> str | None:
    """The message the controller stored for a node, without the node's name an older controller began it with.

    A listing's `errors` entry names the node in its own `node` field, and stderr writes it before the message.
    """
    if state is None or not state.message:
        return None
    return state.message.removeprefix(f"{state.node}: ")


def stale_for(state: NodeState, now: float, interval_s: float) -> float | None:
    """How long ago a node the store calls up (or degraded) was last seen, when the controller would call it down.

    None while the row is fresh enough, or says down already. The node's own clock may be up to `CLOCK_OFF_S` behind.
    """
    if state.state == "down" or state.last_seen is None:
        return None
    age = now - state.last_seen
    return age if age > silent_for_down_s(interval_s) + CLOCK_OFF_S else None


def stored_hint(spec: NodeSpec, kind: str, message: str) -> str | None:
    """The hint a poll gives for the failure the controller stored: the store keeps kind and message, not the hint.

    The one table (`transport/hints.py`) reads the sub-case from the message, as it does for a poll's errors, so a
    node gets one hint whether a controller runs or not. A node the controller judged down for its silence
    (`3 samples missed`) is pointed at `nodes check` and the controller: `--timeout` does not reach an answer read
    from the store.
    """
    from factoryctl.transport.hints import node_error_hint

    return node_error_hint(spec.name, kind, message, spec.known_hosts or "known_hosts")
