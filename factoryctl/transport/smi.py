"""The agentless fallback: a node with no usable Python is read and capped through `nvidia-smi` over SSH.

`SmiBridge` serves the agent's JSON-lines protocol in this process, over a pair of pipes handed to an ordinary
`AgentSession`, and answers each request by running nvidia-smi on the node (`--query-gpu=... --format=csv,noheader,
nounits` for samples, `-i N -pl W` for limits). So everything above the transport is unchanged; the hello says
`backend: smi`. Telemetry is read-only apart from power limits; fields nvidia-smi cannot give (the energy counter,
slowdown temperature, processes) are null with a reason, never invented. A stream samples as the agent's does: the
first sample at once, then on wall-clock multiples of the interval (factoryctl.agent.schedule), a failed poll sent as
an error sample and the stream going on.

A change of power limits holds the node's limits lock, its agents' (factoryctl.agent.limits_lock), from the read
before to the read after, as one `sh` script under `flock -w` (factoryctl.transport.smi_lock): two `power set` runs interleaved
their separate nvidia-smi calls, and the audit log showed two changes from one before. A node without `flock` is
refused, as the agent refuses a lock it cannot use: an unlocked change could break the chain unseen.

Its version, ops, error objects and message shapes are the agent's own (factoryctl.agent.protocol), so the bridge
cannot drift from the agent it stands in for; a malformed request gets the agent's refusal and serving goes on (a
`KeyError` or `int("a")` ended the bridge unanswered, the session saying only that the agent exited).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Mapping
from typing import IO, Any, cast

from factoryctl.agent.limits_lock import requested_wait
from factoryctl.agent.protocol import (
    DRIVER_FAILED,
    GPU_LOST,
    LOCK_BUSY,
    LOCK_UNUSABLE,
    NEEDS_ROOT,
    NO_DRIVER,
    PROTOCOL_VERSION,
    UNSUPPORTED,
    AgentMessage,
    ErrorSampleMessage,
    Hello,
    RequestError,
    RequestId,
    SampleMessage,
    WireSample,
    bool_field,
    check_new_stream,
    encode,
    error_object,
    error_sample,
    gpus_field,
    ok_reply,
    op_field,
    read_request,
    seconds_field,
    stream_field,
    watts_field,
)
from factoryctl.agent.schedule import next_due, read_clocks
from factoryctl.errors import NodeError
from factoryctl.model.folding import fold_indexes
from factoryctl.transport.base import CommandCut
from factoryctl.transport.session import AgentSession
from factoryctl.transport.smi_lock import LOCKED_CHANGE, NO_FLOCK, locked_change_steps
from factoryctl.transport.smi_query import QUERY_FORMAT, REASON_NAMES, parse_query, query_arg
from factoryctl.transport.ssh import SshConnection

#: nvidia-smi's exit codes (nvidia-smi(1), RETURN VALUE) as the `reason` of the agent protocol's driver errors.
_EXIT_REASONS = {3: UNSUPPORTED, 4: NEEDS_ROOT, 9: NO_DRIVER, 12: NO_DRIVER, 15: GPU_LOST}


class SmiBridge:
    """Answers agent-protocol requests by running nvidia-smi on the node."""

    def __init__(self, node: str, connection: SshConnection, timeout: float, reason: str = "") -> None:
        self.node = node
        self.connection = connection
        self.timeout = timeout
        self.reason = reason
        #: Why nvidia-smi could not serve the hello (None while it works).
        self.error: str | None = None
        #: The name this node's nvidia-smi knows the clock event reasons by (one of REASON_NAMES).
        self.reasons_name = REASON_NAMES[0]
        self._streams: dict[RequestId, threading.Event] = {}
        self._write_lock = threading.Lock()
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        self._requests = os.fdopen(request_r, "rb")
        self._replies = os.fdopen(reply_w, "wb")
        self._session_in = os.fdopen(request_w, "wb")
        self._session_out = os.fdopen(reply_r, "rb")

    def serve(self) -> tuple[IO[bytes], IO[bytes]]:
        """Start serving; returns the client's ends of the pipes: (requests, replies), the hello queued on the latter."""
        threading.Thread(target=self._serve, daemon=True, name=f"smi-{self.node}").start()
        return cast("IO[bytes]", self._session_in), cast("IO[bytes]", self._session_out)

    def session(self) -> AgentSession:
        """Start serving and return the client session (its hello is already queued)."""
        requests, replies = self.serve()
        return AgentSession(self.node, requests, replies, stderr_tail=lambda: self.reason, cut_off=self._lost)

    def _lost(self) -> NodeError | None:
        """Why the bridge's replies ended, when it was the connection: the session says so, not "the agent exited"."""
        if self.connection.transport.is_active():
            return None
        return self.connection.lost(f"to {self.connection.target.label}")  # said as silent if the watch gave it up

    # ------------------------------------------------------------------ serving

    def _send(self, message: AgentMessage) -> None:
        with self._write_lock:
            self._replies.write((encode(message) + "\n").encode())
            self._replies.flush()

    def _serve(self) -> None:
        try:
            gpus = self._query()
            hello: Hello = {"type": "hello", "agent_version": None, "protocol": PROTOCOL_VERSION, "backend": "smi",
                            "node": self.node, "python": None, "gpus": len(gpus)}  # fmt: skip
            self._send(hello)
            for raw in self._requests:
                request = self._read_request(raw)
                if request is None:
                    continue
                if request.get("op") == "shutdown":
                    self._send(ok_reply(request.get("id"), {"bye": True}))
                    break
                self._answer(request)
        except NodeError as exc:
            self.error = exc.message
        except (OSError, ValueError):  # the session closed its end
            pass
        finally:
            for stop in self._streams.values():
                stop.set()
            with self._write_lock:
                self._replies.close()
            self._requests.close()

    def _read_request(self, raw: bytes) -> dict[str, Any] | None:
        """The request on line `raw`; None for a blank line or one refused as the agent's (protocol, Wire format 4)."""
        if not raw.strip():
            return None
        try:
            return read_request(raw)
        except RequestError as unreadable:
            self._send(unreadable.reply(None))
            return None

    def _answer(self, request: dict[str, Any]) -> None:
        rid = request.get("id")
        stream: threading.Thread | None = None
        op = request.get("op")  # named in the reply to a bug's exception
        try:
            op = op_field(request)
            if op == "sample":
                result: Mapping[str, Any] = self._sample()
            elif op in ("set_power_limit", "reset_power_limit"):
                result = self._set_limits(request, reset=op == "reset_power_limit")
            elif op == "stream":
                stream = self._new_stream(rid, _interval(request))
                result = {"streaming": True}
            elif op == "clock":
                result = {"time": time.time()}  # its samples are stamped here too, on our clock
            elif op == "stop":
                result = self._stop(stream_field(request))  # a list is no id: a usage error, not a TypeError
            else:
                raise RequestError("usage", f"`{op}` is not available through nvidia-smi (no Python on the node)")
        except RequestError as refused:  # with `result`, what was done before it failed (docs/agent-protocol.md)
            self._send(refused.reply(rid))
            return
        except NodeError as exc:
            self._send(RequestError("driver", exc.message, reason=_reason(exc)).reply(rid))
            return
        except Exception as exc:  # a bug: answered as the agent answers one, and serving goes on
            self._send(RequestError("agent", f"{op} failed: {exc!r}").reply(rid))
            return
        self._send(ok_reply(rid, result))
        if stream is not None:
            stream.start()  # after the reply, which its first sample must not overtake

    def _smi(self, args: list[str]) -> str:
        done = self.connection.run(["nvidia-smi", *args], timeout=self.timeout)
        if done.exit_code != 0:
            raise self._failed(done.stdout, done.stderr, done.exit_code)
        return done.stdout.decode("utf-8", "replace")

    def _failed(self, stdout: bytes | str, stderr: bytes | str, code: int) -> NodeError:
        """The error of an nvidia-smi that exited `code`: what it said on stderr, else on stdout, else the code."""
        said = stderr or stdout
        text = (said.decode("utf-8", "replace") if isinstance(said, bytes) else said).strip() or f"exit {code}"
        return _SmiFailed(self.node, f"nvidia-smi failed: {text}", _EXIT_REASONS.get(code, DRIVER_FAILED))

    def _query(self) -> list[dict[str, Any]]:
        """Every GPU, the clock event reasons asked for by the name this node's nvidia-smi knows (found out once)."""
        name = self.reasons_name
        try:
            return self._query_as(name)
        except NodeError as exc:
            if f'"{name}" is not a valid field' not in exc.message:
                raise
        self.reasons_name = next(other for other in REASON_NAMES if other != name)
        return self._query_as(self.reasons_name)

    def _query_as(self, reasons_name: str) -> list[dict[str, Any]]:
        """The GPUs read under `reasons_name`; output nvidia-smi should never print is the driver's NodeError.

        So a `sample` or `set_power_limit` request is answered with that error and the bridge goes on serving, as a
        stream's poll goes on: the ValueError ended the whole bridge, the session saying only that the agent exited.
        """
        return self._parsed(self._smi([query_arg(reasons_name), *QUERY_FORMAT]))

    def _parsed(self, output: str) -> list[dict[str, Any]]:
        """`parse_query(output)`; output it cannot read is the driver's NodeError (see `_query_as`)."""
        try:
            return parse_query(output)
        except ValueError as exc:
            raise NodeError(
                self.node,
                "driver",
                f"nvidia-smi's output could not be read ({exc})",
                "run nvidia-smi on the node to see what it prints, and check the NVIDIA driver there.",
            ) from None

    def _sample(self) -> WireSample:
        return {"time": time.time(), "backend": "smi", "gpus": self._query(), "host": {}}

    def _new_stream(self, rid: RequestId, interval: float) -> threading.Thread:
        """The thread of stream `rid`, registered for `stop` (the caller starts it once the reply is sent).

        Refused under the id of one running, as by the agent: it replaced that one, which sampled on past its `stop`;
        and past the agent's MAX_STREAMS, each a thread running nvidia-smi: a client cannot start thousands.
        """
        check_new_stream(rid, self._streams)
        stop = threading.Event()
        self._streams[rid] = stop
        return threading.Thread(
            target=self._stream, args=(rid, interval, stop), daemon=True, name=f"smi-stream-{self.node}"
        )

    def _stop(self, target: RequestId) -> dict[str, Any]:
        """`stop`: end stream `target` (every stream when it is None); `stopped` says whether one was running."""
        ids = list(self._streams) if target is None else [target] if target in self._streams else []
        for rid in ids:
            self._streams.pop(rid).set()
        return {"stopped": bool(ids)}

    def _stream(self, rid: RequestId, interval: float, stop: threading.Event) -> None:
        """Sample now, then on wall-clock multiples of the interval, as every agent does (factoryctl.agent.schedule).

        A failed poll (nvidia-smi timed out, a busy driver) is sent as an error sample and the stream goes on, as the
        agent's does: it used to end the stream without a word, the node down only at the link's stall timeout. It
        ends when the session's pipe is gone, or, when the connection is lost, ends the bridge, which the session
        reports as the lost connection (`_lost`): a poll over a dead connection would only fail again.
        """
        due = time.monotonic()
        while not stop.is_set():
            message = self._stream_sample(rid)
            if stop.is_set():
                return
            if "error" in message and not self.connection.transport.is_active():
                with self._write_lock:
                    self._replies.close()
                return
            try:
                self._send(message)
            except (OSError, ValueError):  # the session closed its end
                return
            mono_now, wall_now, spread = read_clocks(time.monotonic, time.time)
            due = next_due(due, mono_now, wall_now, interval, spread)
            stop.wait(max(0.0, due - time.monotonic()))

    def _stream_sample(self, rid: RequestId) -> SampleMessage | ErrorSampleMessage:
        """A stream's sample message: the sample, or the error of the poll (agent protocol, `stream`).

        A bug is the error of that poll too, as in the agent's stream (factoryctl.agent.server): an exception other
        than a NodeError (a `csv.Error` from a CR in nvidia-smi's output, once) ended the stream's thread with a
        traceback over the dashboard, and the node's samples stopped without a word.
        """
        try:
            return {"id": rid, "type": "sample", "result": self._sample()}
        except NodeError as exc:  # output it could not read too (`_query_as`)
            return error_sample(rid, error_object(exc.kind, exc.message, _reason(exc)))
        except Exception as exc:  # a bug must not kill the stream silently
            return error_sample(rid, error_object("agent", f"sample failed: {exc!r}"))

    def _set_limits(self, request: dict[str, Any], reset: bool) -> dict[str, Any]:
        """Check every GPU's range, then set each in turn: a failure part-way lists the GPUs already set, as the agent.

        Their changes must reach the audit log: the error reply carries them as `result` (docs/agent-protocol.md), each
        with `before_w` from the query before the sets and `enforced_w` from one after, null when that one fails. The
        range is checked on a query of its own; the query before, the sets and the query after hold the node's limits
        lock (`_change_locked`), waited for until the request's `lock_timeout_s` from its arrival, when the agent's
        wait would end: counted from the lock's own wait, the range's query came on top and the reply could come after
        factoryctl gave up on it (a limit set then would go unaudited).
        """
        requested = None if reset else watts_field(request)  # a malformed request is refused before anything runs
        clamp = False if reset else bool_field(request, "clamp", False)
        wanted = gpus_field(request)
        deadline = time.monotonic() + _lock_wait(request)
        gpus = self._query()
        chosen = [g for g in gpus if wanted is None or g["index"] in wanted]
        missing = sorted(set(wanted or ()) - {g["index"] for g in gpus})
        if missing:  # no sentence names the node: the client writes it in front of each, as the agent's
            raise RequestError("usage", no_such_gpu(missing[0], [g["index"] for g in gpus]))
        plan = []
        for gpu in chosen:
            low, high = gpu["power_limit_min_w"], gpu["power_limit_max_w"]
            watts = gpu["power_limit_default_w"] if requested is None else requested
            if watts is None or low is None or high is None:
                raise _unplannable(gpu, gpus)
            target = min(max(watts, low), high)
            if target != watts and not clamp:
                raise RequestError(
                    "usage", f"{watts:g} W is outside GPU {gpu['index']}'s range {low:g}-{high:g} W; nothing changed"
                )
            plan.append((gpu, target, target != watts))
        return self._change_locked(plan, max(0.0, deadline - time.monotonic()))

    def _change_locked(self, plan: list[tuple[dict[str, Any], float, bool]], wait: float) -> dict[str, Any]:
        """Run `plan` ((gpu, watts, clamped) each) as LOCKED_CHANGE: query, sets, query, under the node's lock.

        A command cut off (a timeout, the connection lost) still reports the sets its output shows were done.
        """
        marker = f"factoryctl-smi-{secrets.token_hex(8)}"
        argv = ["sh", "-c", LOCKED_CHANGE, "factoryctl-smi", f"{wait:.3f}", marker, query_arg(self.reasons_name)]
        for gpu, target, _ in plan:
            argv += [str(gpu["index"]), f"{target:g}"]
        cut: CommandCut | None = None
        try:
            done = self.connection.run(argv, timeout=wait + self.timeout * (2 + len(plan)))
            stdout, stderr = done.stdout, done.stderr
        except CommandCut as exc:
            stdout, stderr, cut = exc.stdout, exc.stderr, exc
        steps = locked_change_steps(stdout, stderr, marker)
        before = self._locked_before(steps, wait, cut)
        planned = {gpu["index"]: (gpu, clamped) for gpu, _, clamped in plan}
        changed: list[tuple[dict[str, Any], bool]] = []
        failure: NodeError | None = None
        after: dict[int, dict[str, Any]] = {}
        for what, out, err, code in steps[1:]:
            if what.startswith("set ") and code == 0:
                gpu, clamped = planned[int(what[4:])]
                changed.append((before.get(gpu["index"], gpu), clamped))
            elif what.startswith("set ") and code is not None:
                failure = self._failed(out, err, code)
            elif code == 0:  # the query after; when it fails, each enforced_w is null
                with contextlib.suppress(NodeError):
                    after = {gpu["index"]: gpu for gpu in self._parsed(out)}
        if failure is None and len(changed) < len(plan):  # cut off (or ended) before the last set was done
            failure = cut or _SmiFailed(self.node, "nvidia-smi's change ended before every GPU was set", DRIVER_FAILED)
        if failure is not None:
            raise RequestError("driver", failure.message, {"gpus": _set_answers(changed, after)}, _reason(failure))
        return {"gpus": _set_answers(changed, after)}

    def _locked_before(
        self, steps: list[tuple[str, str, str, int | None]], wait: float, cut: CommandCut | None
    ) -> dict[int, dict[str, Any]]:
        """The GPUs by index, read under the lock before the sets; a lock busy or unusable refused as the agent's."""
        what, out, err, code = steps[0] if steps else ("", "", "", None)
        if what.startswith("busy "):
            held = f"another change of its power limits was still running after {wait:.3g} s (it holds {what[5:]})"
            raise RequestError("driver", f"{held}; nothing was changed: try again once it has ended.", None, LOCK_BUSY)
        if what.startswith(("unusable ", "noflock")):
            clause = what[9:] if what.startswith("unusable ") else NO_FLOCK
            unusable = f"cannot lock its power limits: {clause}; nothing was changed"
            raise RequestError("driver", unusable, None, LOCK_UNUSABLE)
        if what != "query" or code is None:
            said = (err or out).strip() or "no output"
            raise cut or _SmiFailed(
                self.node, f"the locked change of its power limits did not run: {said}", DRIVER_FAILED
            )
        if code != 0:
            raise self._failed(out, err, code)
        return {gpu["index"]: gpu for gpu in self._parsed(out)}


def no_such_gpu(index: int, present: list[int]) -> str:
    """`no GPU 2 (it has GPUs 0-1,3)`: the GPUs nvidia-smi listed, as they are (a lost one may leave a gap)."""
    return f"no GPU {index} ({f'it has GPUs {fold_indexes(present)}' if present else 'it lists no GPU'})"


def _unplannable(gpu: dict[str, Any], gpus: list[dict[str, Any]]) -> RequestError:
    """Refusing a GPU nvidia-smi printed no range for: lost (as the agent refuses it), or unsupported."""
    index = gpu["index"]
    if "gpu_lost" in gpu["null_reasons"].values():
        others = [g["index"] for g in gpus if g["index"] != index]
        return RequestError("driver", f"GPU {index} is lost; nothing was changed", None, GPU_LOST, others)
    return RequestError("driver", f"GPU {index} does not report its power-limit range", None, UNSUPPORTED)


def _set_answers(done: list[tuple[dict[str, Any], bool]], after: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """`{index, before_w, enforced_w, clamped}` of each GPU set, `enforced_w` from the query after (null without it).

    The limits are changed by then: a query after that fails (nvidia-smi gone, the connection lost) must not lose them.
    """
    return [
        {
            "index": gpu["index"],
            "before_w": gpu["power_limit_w"],
            "enforced_w": after.get(gpu["index"], {}).get("power_limit_w"),
            "clamped": clamped,
        }
        for gpu, clamped in done
    ]


class _SmiFailed(NodeError):
    """nvidia-smi exited with an error: the driver's failure, with the `reason` its exit code means."""

    def __init__(self, node: str, message: str, reason: str) -> None:
        super().__init__(node, "driver", message, "check the NVIDIA driver on the node.")
        self.reason = reason


def _reason(exc: NodeError) -> str:
    """The `reason` of a failure while serving: nvidia-smi's (by its exit code), else `driver_failed`."""
    return exc.reason if isinstance(exc, _SmiFailed) else DRIVER_FAILED


def _interval(request: dict[str, Any]) -> float:
    """A `stream`'s `interval_s`, its `slow_interval_s` checked too (the bridge has no slow tier), as the agent's."""
    seconds_field(request, "slow_interval_s", 1.0)
    return seconds_field(request, "interval_s", 1.0)


def _lock_wait(request: dict[str, Any]) -> float:
    """The request's `lock_timeout_s` (default 5 s), refused as the agent refuses it when it is no such number."""
    try:
        return requested_wait(request)
    except ValueError as exc:
        raise RequestError("usage", str(exc)) from None
