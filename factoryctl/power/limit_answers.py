"""What a node answers to a change of its power limits, as `LimitChange`s, and the errors that say what may have changed.

Split from limits.py, which asks the nodes and records their answers: the agent's answers read (`limit_changes`,
`partly_changed`), a malformed one, and a timeout said as whether the limit may have changed (`step_timed_out`). The
dashboard's cap reads its node's answers with the same functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from factoryctl.errors import NodeError
from factoryctl.model.telemetry import MAX_GPU_INDEX, number_or_none
from factoryctl.transport.base import CommandCut
from factoryctl.transport.session import PartlyDone


@dataclass(frozen=True)
class LimitChange:
    """One GPU's limit before and after a request."""

    node: str
    gpu: int
    before_w: float | None
    enforced_w: float | None  # None: the GPU changed, but could not say to what (lost right after its set)
    clamped: bool


#: How a node's timeout before its request went out ends (`step_timed_out`): the CLI then does not say it again.
NO_LIMIT_CHANGED = "; no limit was changed"


class Unconfirmed(NodeError):
    """A node asked to change its limits that never answered (a timeout, a stop): they may have changed, or not.

    Its own class, so the closing sentence counts it (`may have changed`), never saying `no power limit was changed`
    under a node whose line says its limits may have.
    """


def step_timed_out(error: NodeError, timeout: float, asked: str | None = None) -> NodeError:
    """`error` as power set's own timeout, saying whether a limit may have changed; other errors unchanged.

    Before the request went out (`asked` None) no limit was changed: the node's own sentence says what timed out (a
    TCP connect, the agent's hello or sample), and the hint table (`hints.node_error_hint`) what to do about it, so a
    connect timeout names ssh.connect_timeout_s, not --timeout. Only a command's timeout (the agent's check or
    upload over SSH) is reworded: exec's words for it say the command may still be running. Once the agent was asked
    to `asked` ("change", "reset") the limit may have changed, and only reading it again tells.
    """
    from factoryctl.transport.hints import node_error_hint

    if error.kind != "timeout":
        return error
    if asked is not None:
        return Unconfirmed(
            error.node,
            "timeout",
            f"the agent did not answer the {asked} within {timeout:g} s: the limit may have changed",
            f"check with `factoryctl gpus {error.node}`; on a loaded node, give the command a longer --timeout.",
        )
    said = error.message.removeprefix(f"{error.node}: ").rstrip(".")
    if isinstance(error, CommandCut):  # exec's words ("command did not finish ... may still be running")
        said = f"a command checking or uploading the agent did not finish within {timeout:g} s"
    hint = node_error_hint(error.node, "timeout", said)
    return NodeError(error.node, "timeout", f"{said}{NO_LIMIT_CHANGED}", hint)


def limit_changes(node: str, answers: Sequence[dict[str, Any]]) -> list[LimitChange]:
    """The agent's answers (`{index, before_w, enforced_w, clamped}`, docs/agent-protocol.md) as changes.

    An answer that names no GPU (not an object, no `index` from 0 to MAX_GPU_INDEX) raises `malformed_answer`'s
    `Unconfirmed`: the node was asked, so its limits may have changed. Its KeyError said `no power limit was changed`.
    """
    changes = []
    for a in answers:
        index = a.get("index") if isinstance(a, dict) else None
        if type(index) is not int or not 0 <= index <= MAX_GPU_INDEX:
            raise malformed_answer(node, ValueError(f"an answer names no GPU: {a!r:.80}"))
        changes.append(
            LimitChange(node, index, _watts(a.get("before_w")), _watts(a.get("enforced_w")), bool(a.get("clamped")))
        )
    return changes


def malformed_answer(node: str, problem: Exception) -> Unconfirmed:
    """The error of a node whose answer to a change of its limits is not one: they may have changed, or not."""
    return Unconfirmed(
        node,
        "agent",
        f"the agent sent a malformed answer to the change ({problem}): its limits may have changed",
        f"check with `factoryctl gpus {node}`; `factoryctl nodes check {node}` checks its agent.",
    )


def _watts(value: object) -> float | None:
    """Watts from the wire, as a float; None when the node did not say (or said something that is no number)."""
    number = number_or_none(value)
    return None if number is None else float(number)


def partly_changed(failed: PartlyDone) -> tuple[list[LimitChange], NodeError]:
    """What a limit request that failed part-way changed first, and its error, which then names those GPUs."""
    changes = limit_changes(failed.node, failed.result.get("gpus") or [])
    if not changes:
        return [], failed
    done = [str(c.gpu) for c in changes]
    which = f"GPUs {', '.join(done[:-1])} and {done[-1]}" if len(done) > 1 else f"GPU {done[0]}"
    return changes, NodeError(
        failed.node, failed.kind, f"{failed.message.rstrip('.')}; {which} had already changed.", failed.hint
    )
