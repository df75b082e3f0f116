"""An agent's error reply as a `NodeError`: its kind, its message as the node said it, and a hint for its reason.

The driver's failures (root needed, a GPU lost, the limits lock busy or unusable, a capability the GPU lacks) are the
documented kind `driver`, each with the hint for its `reason`; an agent from before reasons is read by its wording.
Kept apart from the session (transport/session.py), which only carries replies: what an error means to an operator
is decided here, once, for every request and every sample.
"""

from __future__ import annotations

from factoryctl.agent.protocol import GPU_LOST, LOCK_BUSY, LOCK_UNUSABLE, NEEDS_ROOT, UNSUPPORTED, Op
from factoryctl.errors import NodeError
from factoryctl.transport.hints import lost_gpu_refusal
from factoryctl.transport.node_text import node_said


def node_error_of(node: str, op: Op, error: object, backend: object = None) -> NodeError:
    """The `NodeError` of an error reply's (or error sample's) `error`, each with a hint naming this node.

    The driver's failures, and a GPU that lacks what was asked (the agent's `unsupported`: no settable or no
    reported power limit), are the documented kind `driver`, their hint chosen by the error's `reason`; anything
    else is the agent's. A lost GPU's refusal is a `LostGpuError` with the error's `other_gpus`, for the hint that
    names them (an older agent's are read from its wording). The message is the node's own: it names no node (an
    older agent's may, once: `GPU 2 on n1 is lost`), and the node is written in front of it by whoever reports it.
    """
    error = error if isinstance(error, dict) else {}
    kind, message = error.get("kind", "agent"), node_said(error.get("message", "unknown error"))
    if kind in ("driver", "unsupported"):
        reason = error["reason"] if "reason" in error else _reason_from_wording(kind, message)
        hint = _driver_hint(node, kind, reason, backend)
        lost = lost_gpu_refusal(node, message, hint, error.get("other_gpus")) if reason == GPU_LOST else None
        return lost or NodeError(node, "driver", message, hint)
    return NodeError(node, "agent", f"`{op}` failed: {message}", agent_hint(node))


def agent_hint(node: str) -> str:
    """What to run to diagnose a node's agent."""
    return f"run `factoryctl nodes check {node}` to diagnose the agent."


def _unsupported_hint(node: str) -> str:
    """A GPU without the capability: nothing to repair, only to leave out."""
    return (
        f"its board or driver cannot do this (`factoryctl gpus {node} -o json` names what it does not report, "
        "in null_reasons); leave the node out of the target, or address the node's other GPUs alone (node/GPUS)."
    )


def _driver_hint(node: str, kind: str, reason: object, backend: object) -> str:
    """What to check for an error of `kind` and `reason`: root, the GPU, the lock; else the driver (or sim's dir).

    A reason this factoryctl does not know (a newer agent's) gets its kind's general hint, as `no_driver` and
    `driver_failed` do.
    """
    hints = {
        NEEDS_ROOT: _NEEDS_ROOT_HINT,
        UNSUPPORTED: _unsupported_hint(node),
        LOCK_BUSY: _LOCK_BUSY_HINT,
        LOCK_UNUSABLE: _LOCK_UNUSABLE_HINT,
        GPU_LOST: _GPU_LOST_HINT,
    }
    if isinstance(reason, str) and reason in hints:
        return hints[reason]
    if kind == "unsupported":
        return hints[UNSUPPORTED]
    if backend == "sim":
        return "check that the node's state_dir (factory.yaml, else $XDG_STATE_HOME) is a writable directory."
    return "check the NVIDIA driver on the node."


#: What a power-limit request leaves of its own timeout for the answer to travel back (see `limits_lock_wait`).
_LOCK_MARGIN_S = 1.0
#: The longest lock wait the agent takes (docs/agent-protocol.md, `lock_timeout_s`).
_LOCK_WAIT_MAX_S = 60.0

_NEEDS_ROOT_HINT = (
    "changing GPU power limits needs root on the node, as `nvidia-smi -pl` does: connect as root (User in "
    "~/.ssh/config, or `user:` / `ssh.user` in factory.yaml), or run factoryctl as root for a `transport: local` node."
)
_LOCK_BUSY_HINT = (
    "another factoryctl (a cron job, a colleague, a dashboard) was changing this node's power limits: run the command "
    "again once it has ended, or give it a longer --timeout to wait for it (the node waits "
    f"{_LOCK_MARGIN_S:g} s less than the --timeout, {_LOCK_WAIT_MAX_S:g} s at most)."
)
_LOCK_UNUSABLE_HINT = (
    "the node's power-limits lock file cannot be used: fix or remove what the message names on the node "
    "(docs/agent-protocol.md, Power limits)."
)
_GPU_LOST_HINT = (
    "a lost GPU answers nothing until it is reset or the node rebooted; address the node's other GPUs alone "
    "(node/GPUS), and see `factoryctl events --kind gpu_lost`."
)


def _reason_from_wording(kind: str, message: str) -> str | None:
    """The `reason` an error without one means, read from its wording: an agent's `unsupported`, else the message.

    Only for errors that carry no `reason` (docs/agent-protocol.md, Errors), such as an agent from before it; the
    agents factoryctl starts always send one. The phrases are the agent's and the nvidia-smi bridge's messages, each
    found with the node named in it (an older agent's `setting a power limit on n1 needs root`, `GPU 2 on n1 is lost`)
    or not (this one's).
    """
    if kind == "unsupported":
        return UNSUPPORTED
    if "needs root" in message or "insufficient permissions" in message.lower():
        return NEEDS_ROOT
    if "does not report its power" in message or "does not support setting" in message:
        return UNSUPPORTED  # the nvidia-smi bridge's word for what the agent calls `unsupported`
    if "another change of its power limits" in message:
        return LOCK_BUSY
    if "cannot lock its power limits" in message:
        return LOCK_UNUSABLE
    if " is lost" in message or " was lost" in message:
        return GPU_LOST
    return None


def limits_lock_wait(timeout: float) -> float:
    """How long the agent may wait for another change of the node's limits: within the request's own `timeout`.

    Waiting longer, it could set a limit after factoryctl gave up on the request, and nobody would audit it. (A stop
    does not wait for it: the agent is killed on factoryctl's way out, transport/node_leftovers.py.)
    """
    return min(_LOCK_WAIT_MAX_S, max(0.0, timeout - _LOCK_MARGIN_S))
