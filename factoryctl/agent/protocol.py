"""The agent's wire protocol in one place: its version, its ops, its error reasons and the shapes of its messages.

Three programs speak docs/agent-protocol.md: the agent (factoryctl.agent.server), the nvidia-smi bridge that answers
for a node without Python (factoryctl.transport.smi) and the client (factoryctl.transport.session). Each wrote the
version, the op names and the error objects out by hand, and nothing tied them together: a version bumped on one side
only, or an op renamed on one side only, would have been found on a node. Here they are defined once, for all three.

Shipped inside the agent zipapp (factoryctl.transport.bundle ships every module of factoryctl.agent), so it imports
only the standard library and stays Python 3.9 code. The TypedDicts describe what a conforming side sends, for the
type checker only: nothing is validated at run time (a sample goes out every interval and stays a plain dict), and
the client still reads every message it receives as untrusted JSON.
"""

from __future__ import annotations

import json
import math
from typing import (
    Any,
    Collection,
    Dict,
    Final,
    List,
    Literal,
    Mapping,
    NoReturn,
    Optional,
    Tuple,
    TypedDict,
    Union,
    cast,
    get_args,
)

#: The version in every hello; the client refuses an agent that speaks another.
PROTOCOL_VERSION: Final = 1

#: Every request's `op` (docs/agent-protocol.md, Operations). The agent serves exactly these (`op_<name>` methods);
#: the nvidia-smi bridge a subset; anything else is a `usage` error. An op is added without a version change (an
#: older agent refuses it as unknown); PROTOCOL_VERSION changes only when an existing op or message changes shape.
Op = Literal[
    "sample", "stream", "stop", "set_power_limit", "reset_power_limit", "inject", "clock", "launch", "ranks", "kill",
    "logs", "shutdown",
]  # fmt: skip
OPS: Tuple[Op, ...] = get_args(Op)

#: The `kind` of an error the agent sends (docs/agent-protocol.md, Wire format): `usage` means refused, nothing changed.
ErrorKind = Literal["usage", "driver", "agent", "unsupported"]

#: The `reason` of a `driver` or `unsupported` error (docs/agent-protocol.md, Errors): the client picks its hint by it,
#: never by the wording of the message, which is for people and may change. A newer agent may add reasons.
NEEDS_ROOT: Final = "needs_root"  # the driver refused a user who is not root
UNSUPPORTED: Final = "unsupported"  # the GPU cannot do it (no settable limit, no reported range)
GPU_LOST: Final = "gpu_lost"  # the GPU stopped answering
LOCK_BUSY: Final = "lock_busy"  # another change held the node's limits lock for the whole wait
LOCK_UNUSABLE: Final = "lock_unusable"  # the limits lock file cannot be used or locked
NO_DRIVER: Final = "no_driver"  # the driver (NVML, the simulated one's state) is not available
DRIVER_FAILED: Final = "driver_failed"  # the driver failed otherwise: the message says how
REASONS: Tuple[str, ...] = (NEEDS_ROOT, UNSUPPORTED, GPU_LOST, LOCK_BUSY, LOCK_UNUSABLE, NO_DRIVER, DRIVER_FAILED)

#: A request's `id`, echoed by its reply and its stream's samples: a JSON scalar (null on a line that was no request).
RequestId = Union[int, float, str, None]


class _ErrorRequired(TypedDict):
    kind: str  # an ErrorKind from an agent; the bridge's stream samples also pass on its connection's (`timeout`)
    message: str  # for people: may be reworded in any release


class ErrorObject(_ErrorRequired, total=False):
    """A reply's or a stream sample's `error`: `reason` on every `driver` and `unsupported` error, never on others.

    `other_gpus` only on the refusal of a whole power-limit request for a lost GPU (reason `gpu_lost`, nothing
    changed): the node's other GPU indexes, which a client can address alone, so it never reads them from the message.
    """

    reason: str
    other_gpus: List[int]


class _HelloRequired(TypedDict):
    type: Literal["hello"]
    agent_version: Optional[str]  # null from the nvidia-smi bridge
    protocol: int
    backend: str  # nvml, sim, smi
    node: str
    python: Optional[str]  # null from the nvidia-smi bridge
    gpus: Optional[int]  # null when the driver cannot start, with `error`


class Hello(_HelloRequired, total=False):
    """The first line an agent writes."""

    pid: int  # the agent's process, for a client to end one that stopped answering (not from the bridge)
    driver_version: str
    error: ErrorObject  # why the driver cannot start (reason `no_driver`)


class WireSample(TypedDict):
    """A node sample: each GPU carries the GPU fields of `gpus -o json` without `node` (factoryctl.agent.sampler)."""

    time: float  # the node's clock, Unix seconds
    backend: str
    gpus: List[Dict[str, Any]]
    host: Dict[str, Optional[float]]  # cpu_pct, memory_used_mib, memory_total_mib, load_1m (empty from the bridge)


class OkReply(TypedDict):
    """The reply to a request that was done, echoing its id."""

    id: RequestId
    ok: Literal[True]
    result: Mapping[str, Any]  # the op's (docs/agent-protocol.md, Operations): a WireSample for `sample`


class _ErrorReplyRequired(TypedDict):
    id: RequestId
    ok: Literal[False]
    error: ErrorObject


class ErrorReply(_ErrorReplyRequired, total=False):
    """A refused request; a power-limit change that failed part-way also lists what it changed, in `result`."""

    result: Dict[str, Any]


class _SampleRequired(TypedDict):
    id: RequestId
    type: Literal["sample"]
    result: WireSample


class SampleMessage(_SampleRequired, total=False):
    """One sample of a running stream, under the stream request's id.

    `missed` (only when not 0) counts the samples of the stream taken before this one that never went out: the
    agent's output queue dropped them while nobody read it (factoryctl.agent.outbox).
    """

    missed: int


class _ErrorSampleRequired(TypedDict):
    id: RequestId
    type: Literal["sample"]
    ok: Literal[False]
    error: ErrorObject


class ErrorSampleMessage(_ErrorSampleRequired, total=False):
    """A sample a stream could not take: its error, no `result`; the stream goes on (`missed` as a sample's)."""

    missed: int


#: Every line an agent (or the bridge) writes.
AgentMessage = Union[Hello, OkReply, ErrorReply, SampleMessage, ErrorSampleMessage]


def error_object(
    kind: str, message: str, reason: Optional[str] = None, other_gpus: Optional[List[int]] = None
) -> ErrorObject:
    """`{"kind", "message"}`, plus `reason` and `other_gpus` when there are (ErrorObject)."""
    error: ErrorObject = {"kind": kind, "message": message}
    if reason is not None:
        error["reason"] = reason
    if other_gpus is not None:
        error["other_gpus"] = other_gpus
    return error


def error_sample(stream_id: RequestId, error: ErrorObject) -> ErrorSampleMessage:
    """The message of a stream's sample that failed with `error`."""
    return {"id": stream_id, "type": "sample", "ok": False, "error": error}


def ok_reply(request_id: RequestId, result: Mapping[str, Any]) -> OkReply:
    """The reply to a request that was done."""
    return {"id": request_id, "ok": True, "result": result}


class RequestError(Exception):
    """A request that is refused with an error reply of `kind`.

    `reason` (one of REASONS) is set on every `driver` and `unsupported` refusal; `result` is what was done first;
    `other_gpus` the node's GPUs a lost GPU's refusal leaves to address alone (ErrorObject).
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        result: Optional[Dict[str, Any]] = None,
        reason: Optional[str] = None,
        other_gpus: Optional[List[int]] = None,
    ) -> None:
        super().__init__(message)
        self.kind: ErrorKind = kind
        self.message = message
        self.result = result
        self.reason = reason
        self.other_gpus = other_gpus

    def error(self) -> ErrorObject:
        """The reply's `error` object."""
        return error_object(self.kind, self.message, self.reason, self.other_gpus)

    def reply(self, request_id: RequestId) -> ErrorReply:
        """The error reply to request `request_id`, with `result` when something was done before the refusal."""
        reply: ErrorReply = {"id": request_id, "ok": False, "error": self.error()}
        if self.result is not None:
            reply["result"] = self.result
        return reply


# -- requests: read and checked alike by every server (the agent and the nvidia-smi bridge) ----------------------

#: The bounds of a stream's `interval_s` and `slow_interval_s`, in seconds.
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 3600.0
#: The most streams one agent runs at once, each a thread and its queue: a controller runs one per agent (both
#: tiers, fast and slow, in it; a new interval stops it before the next starts), so this is room enough, and a
#: client cannot make thousands (docs/agent-protocol.md, Operations).
MAX_STREAMS = 8


def check_new_stream(stream_id: object, running: Collection[object]) -> None:
    """Refuse a new stream, in the agent and the nvidia-smi bridge alike.

    Refused: one under the id of a stream running (it would replace it, which samples on past its `stop`), and one
    past MAX_STREAMS.
    """
    if stream_id in running:
        raise RequestError("usage", f"stream {stream_id} is already running")
    if len(running) >= MAX_STREAMS:
        raise RequestError(
            "usage", f"this agent already runs {MAX_STREAMS} streams, the most it serves: stop one first"
        )


def encode(message: AgentMessage) -> str:
    """One line of the wire (without its newline): compact JSON, and never NaN or Infinity, which are not JSON."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


def read_request(line: Union[str, bytes]) -> Dict[str, Any]:
    """The request on one line; a line no reply could answer is refused as an `agent` error (its reply has id null).

    NaN and Infinity are refused with invalid JSON (no reply could echo them), and so is a number past a double's
    range (`1e400`), which the parser would read as Infinity: as an id, its reply could not be written, and the agent
    ended with a traceback. An id must be a number or a string: a nested list could outgrow the encoder, and `true`
    is no number, though Python's bool is an int.
    """
    try:
        request = json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except ValueError:  # also NaN and Infinity, and bytes that are no UTF-8
        raise RequestError("agent", "the request is not valid JSON") from None
    except RecursionError:  # nested deeper than the parser's stack
        raise RequestError("agent", "the request is nested too deeply") from None
    if not isinstance(request, dict):
        raise RequestError("agent", "a request must be a JSON object")
    if not _is_request_id(request.get("id")):
        raise RequestError("agent", "a request's id must be a number or a string")
    return request


def _is_request_id(value: object) -> bool:
    """Whether `value` is a RequestId: a number (not a boolean, though Python's bool is an int), a string or null."""
    return value is None or (isinstance(value, (int, float, str)) and not isinstance(value, bool))


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent as a float; ValueError past a double's range (it would be inf)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range")
    return value


def op_field(request: Mapping[str, Any]) -> Op:
    """The request's `op`, one of OPS; a `usage` error when it is missing or no op of the protocol."""
    op = request.get("op")
    if op is None:
        raise RequestError("usage", "the request has no op")
    if not isinstance(op, str):
        raise RequestError("usage", "a request's op must be a string")
    if op not in OPS:
        raise RequestError("usage", f"unknown op {json.dumps(op)}")
    return cast(Op, op)


def seconds_field(request: Mapping[str, Any], key: str, default: float) -> float:
    """The request's `key`, a number of seconds between MIN_INTERVAL_S and MAX_INTERVAL_S (`default` when absent)."""
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise RequestError("usage", f"{key} must be a number of seconds")
    if not MIN_INTERVAL_S <= value <= MAX_INTERVAL_S:
        raise RequestError("usage", f"{key} must be between {MIN_INTERVAL_S:g} and {MAX_INTERVAL_S:g}")
    return float(value)


def watts_field(request: Mapping[str, Any]) -> float:
    """`set_power_limit`'s `watts`: a finite number (a boolean is not one)."""
    watts = request.get("watts")
    if isinstance(watts, bool) or not isinstance(watts, (int, float)) or not math.isfinite(watts):
        raise RequestError("usage", "watts must be a number")
    return float(watts)


def bool_field(request: Mapping[str, Any], key: str, default: bool) -> bool:
    """The request's `key`, true or false (`default` when absent): a string such as "no" is no boolean."""
    value = request.get(key, default)
    if not isinstance(value, bool):
        raise RequestError("usage", f"{key} must be true or false")
    return value


def gpus_field(request: Mapping[str, Any]) -> Optional[List[int]]:
    """The request's `gpus`: a list of GPU indexes, or None for every GPU (whether they exist is the server's check)."""
    wanted = request.get("gpus")
    if wanted is None:
        return None
    if not isinstance(wanted, list) or not all(isinstance(g, int) and not isinstance(g, bool) for g in wanted):
        raise RequestError("usage", "gpus must be a list of GPU indexes or null for all")
    return wanted


def stream_field(request: Mapping[str, Any]) -> RequestId:
    """`stop`'s `stream`: the id of the `stream` request to end, or None (absent or null) for every stream.

    A list or an object is no id any request could have had (`read_request`): a `usage` error, never a lookup that
    fails inside the server (a list is unhashable).
    """
    stream = request.get("stream")
    if not _is_request_id(stream):
        raise RequestError("usage", "stream must be the id of a stream request (a number or a string), or null for all")
    return cast(RequestId, stream)
