"""What the store knows per node: its judged state, its newest sample, and whether an operator drained it.

`factoryctl nodes`, the dashboard and the telemetry reads of a live controller answer from here without touching a
node; drains are kept here (not in factory.yaml) so every operator and the scheduler see the same flag, and each
drain or resume is also logged as an event. `update_node_state` is the one UPDATE of a node's state, shared with
the sample writer that stores state changes in the same transaction as the samples. A scheduling pass reads only
each node's state and health (`node_health`): parsing every node's newest sample was most of its store reads.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from factoryctl.model.telemetry import NodeSample, unix_time_or_none
from factoryctl.store import rows
from factoryctl.store.connection import StoreConnection
from factoryctl.store.logs import insert_event, typed_text
from factoryctl.store.rows import DrainInfo, Event, NodeState, to_ms

#: meta key: when the newest sample was stored, on the clock of the process that stored it (see `newest_sample_time`).
SAMPLES_STORED_AT = "samples_stored_at"


def update_node_state(db: sqlite3.Connection, node_id: int, state: NodeState) -> None:
    """Record a node's judged state inside the caller's transaction."""
    db.execute(
        "UPDATE node SET state = ?, state_since_ms = ?, error = ?, message = ?,"
        " last_seen_ms = COALESCE(?, last_seen_ms) WHERE id = ?",
        (
            state.state,
            to_ms(state.since),
            state.error,
            state.message,
            to_ms(state.last_seen) if state.last_seen else None,
            node_id,
        ),
    )


def _readable_sample(text: Any) -> NodeSample | None:  # noqa: ANN401 - a stored value: str, or a BLOB's bytes
    """A stored newest sample, or None when there is none or it no longer passes the checks a sample must pass.

    A store written by an older factoryctl may hold a sample that was let through then (a time past the year 9999):
    that node is read as never sampled rather than failing every reader of the store, the controller included. So
    is a text no factoryctl wrote: a time of 400 digits (no float holds it), lists nested past Python's recursion.
    """
    if not text:
        return None
    try:
        return rows.sample_from_json(text)
    except (ValueError, TypeError, KeyError, OverflowError, RecursionError):
        return None


def node_healthy(state: NodeState, sample: NodeSample | None) -> bool:
    """Whether the scheduler may place work on a node: not down, and its newest sample (if any) is healthy."""
    return state.state != "down" and (sample is None or sample.healthy)


#: What a stored sample holds when it may be unhealthy (`NodeSample.healthy`): its text names a lost GPU or the state
#: "down", has an `error` other than null or an `ecc_uncorrected` other than 0, null or a string (a null reason), or
#: escapes an ASCII character (`\u0065rror` is `error` to JSON). A sample holding none is healthy if it is readable.
_MAY_BE_UNHEALTHY = tuple(
    re.compile(pattern)
    for pattern in (
        "gpu_lost",
        '"down"',
        r"\\u00[2-7]",
        r'"error"\s*:(?!\s*null\s*[,}])',  # the spaces after the colon inside: none to give back to the lookahead
        r'"ecc_uncorrected"\s*:(?!\s*(?:0|null)\s*[,}]|\s*")',
    )
)  # one search each: Python finds a pattern's literal start quickly, not an alternation's


def _sample_healthy(text: Any) -> bool:  # noqa: ANN401 - a stored value, as `_readable_sample`'s
    """`node_healthy` of a node that is not down, from its stored sample, parsing it only when it may be unhealthy.

    Reads as `latest()` and then `node_healthy` would, for every text: a text none of `_MAY_BE_UNHEALTHY` finds in
    is either healthy or unreadable, which is healthy too (a node never sampled), so only the few others are parsed.
    A value that is no text (a BLOB written by other means) is parsed as `latest()` parses it.
    """
    if isinstance(text, str) and not any(pattern.search(text) for pattern in _MAY_BE_UNHEALTHY):
        return True
    sample = _readable_sample(text)
    return sample is None or sample.healthy


def _node_state(name: str, state: str | None, since: int | None, seen: int | None, error: str | None,
                message: str | None) -> NodeState:  # fmt: skip
    """A node row's judged state; a time an older factoryctl stored out of range reads as 0 (since) or unknown."""
    since_s = unix_time_or_none((since or 0) / 1000) or 0.0  # an older factoryctl let any time through
    seen_s = unix_time_or_none(seen / 1000) if seen else None
    return NodeState(name, state or "down", since_s, seen_s, error, message)


#: Every node's judged state and its newest sample's text (NULL if never seen), by node name.
_STATES_AND_SAMPLES = (
    "SELECT n.name, n.state, n.state_since_ms, n.last_seen_ms, n.error, n.message, l.sample"
    " FROM node n LEFT JOIN node_latest l ON l.node_id = n.id ORDER BY n.name"
)


class NodeStates(StoreConnection):
    """Reading each node's state and newest sample; draining and resuming nodes."""

    def latest(self) -> list[tuple[NodeState, NodeSample | None]]:
        """Every node's last judged state and its newest sample (None if never seen), by node name."""
        found = self._query(_STATES_AND_SAMPLES)
        return [(_node_state(*row[:6]), _readable_sample(row[6])) for row in found]

    def node_health(self) -> list[tuple[NodeState, bool]]:
        """Every node's last judged state and `node_healthy` of it and its newest sample, by node name.

        What a scheduling pass reads of the nodes (with `drained_nodes` and `gpu_indexes`): as `latest()` then
        `node_healthy`, without building 1,000 nodes' GPU samples for one flag each (~60 ms of a 1,000-node pass).
        """
        out: list[tuple[NodeState, bool]] = []
        for row in self._query(_STATES_AND_SAMPLES):
            state = _node_state(*row[:6])
            out.append((state, state.state != "down" and _sample_healthy(row[6])))
        return out

    def newest_sample_time(self) -> float | None:
        """Unix time of the newest stored node sample (its node's clock), or None for an empty store."""
        value = self._query("SELECT MAX(t_ms) FROM node_latest")[0][0]
        return value / 1000 if value is not None else None

    def samples_stored_at(self) -> float | None:
        """Unix time the newest sample was stored, on its writer's clock; None for an empty store.

        What readers judge a controller's freshness by. Not the newest sample's own time: that is its node's clock,
        and a node an hour ahead made a stopped controller look fresh for an hour. A store written before the time
        of storing was recorded answers with the newest sample's time.
        """
        stored = self.get_meta(SAMPLES_STORED_AT)
        with contextlib.suppress(ValueError):
            at = unix_time_or_none(float(stored)) if stored is not None else None
            if at is not None:
                return at
        return self.newest_sample_time()

    def set_drained(self, names: Sequence[str], drained: bool, reason: str | None, by: str | None) -> list[str]:
        """Drain (or resume) nodes; returns the names whose flag changed. Each change is also an event."""
        changed: list[str] = []
        now = time.time()
        reason = typed_text(reason) or None  # "" is none; shown to others: no ESC sequences, bytes as \xff
        by = typed_text(by)
        with self._transaction("drain") as db:
            for name in names:
                node_id = self._node_id(db, name)
                was = db.execute("SELECT drained, drain_reason FROM node WHERE id = ?", (node_id,)).fetchone()
                if bool(was[0]) == drained and (not drained or reason is None or was[1] == reason):
                    continue  # draining again without a reason keeps the first one's reason, time and who
                db.execute(
                    "UPDATE node SET drained = ?, drain_reason = ?, drained_at_ms = ?, drained_by = ? WHERE id = ?",
                    (int(drained), reason if drained else None, to_ms(now), by, node_id),
                )
                changed.append(name)
                kind = "drain" if drained else "resume"
                why = f": {reason}" if drained and reason else ""
                insert_event(
                    db,
                    Event(
                        now, kind, f"{name} {'drained' if drained else 'resumed'} by {by or 'unknown'}{why}", node=name
                    ),
                )
        return changed

    def drained_nodes(self) -> dict[str, DrainInfo]:
        """Drained nodes by name, with who drained them, when and why."""
        found = self._query("SELECT name, drain_reason, drained_at_ms, drained_by FROM node WHERE drained = 1")
        return {str(n): DrainInfo(str(n), r, (t or 0) / 1000, b) for n, r, t, b in found}

    def gpu_indexes(self, names: Sequence[str]) -> dict[str, list[int]]:
        """The GPU indexes the store has seen on each of these nodes, in order (nodes without any are left out)."""
        if not names:
            return {}
        marks = ",".join("?" * len(names))
        found = self._query(
            f"SELECT n.name, g.idx FROM gpu g JOIN node n ON n.id = g.node_id WHERE n.name IN ({marks})"
            " ORDER BY n.name, g.idx",
            list(names),
        )
        out: dict[str, list[int]] = {}
        for name, idx in found:
            out.setdefault(str(name), []).append(int(idx))
        return out

    def damage_found(self, within_s: float) -> str | None:
        """What `PRAGMA quick_check` finds wrong with the file in `within_s` seconds; None when it found nothing.

        `controller status` asks when no controller runs: one that exited because its store is damaged left nothing
        its reads touch, and status said "no controller is running" with the hint to start one, back into the
        failure. A check that runs out of time (a big store on a slow disk) found nothing: it is stopped, not waited
        for. A bad page met on the way raises `StoreDamaged`, as any read.
        """
        deadline = time.monotonic() + within_s
        with self._lock, self._translate("check"):
            self._reopen_if_written()
            db = self._db
            db.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
            try:
                found = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)").fetchall()]
            except sqlite3.OperationalError as exc:
                if "interrupt" not in str(exc).lower():
                    raise
                return None
            finally:
                db.set_progress_handler(None, 0)
        return None if found == ["ok"] else found[0].replace("\n", " ")[:200]
