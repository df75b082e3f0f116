"""The agent's protocol server: JSON lines in on stdin, replies and streamed samples out on stdout.

One request per line (`{"id", "op", ...}`), one reply per request echoing the id. Streams run in background threads;
every line goes out through one writer thread (factoryctl.agent.outbox), so lines never interleave, a stream keeps
sampling on schedule while nobody reads, replies do not wait behind its queued samples, and a stopped stream never
writes again after its `stop` reply. A line that is not a JSON object gets an `agent` error and the agent keeps
running; EOF on stdin ends the agent cleanly. Every `driver` and `unsupported` error says its cause as a `reason`
(protocol.REASONS), and a lost GPU's refusal its node's other GPUs as `other_gpus`, so a client never has to read
them from the message's wording. No message names the node: the client writes it in front of each, once
(`n1: GPU 2 is lost`). The names, errors and message shapes are factoryctl.agent.protocol's, shared with the
nvidia-smi bridge and the client. A change of power limits holds the node's limits lock
(factoryctl.agent.limits_lock) across its read-set-read, so concurrent agents on one node change them one at a time.
The job-rank ops (`launch`, `ranks`, `kill`, `logs`) keep nothing here: a rank lives on in files and processes of
its own that outlast the agent (factoryctl.agent.ranks). See docs/agent-protocol.md.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import threading
import time
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union, cast

from factoryctl import __version__
from factoryctl.agent.host import HostSampler
from factoryctl.agent.limits_lock import (
    LimitsLock,
    LimitsLockError,
    LimitsLockGivenUp,
    LimitsLockTimeout,
    requested_wait,
)
from factoryctl.agent.nvml import DriverUnavailable, GpuLost, NvmlSession
from factoryctl.agent.outbox import Outbox, backlog_limit
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
    ErrorKind,
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
from factoryctl.agent.rank_fields import (
    DEFAULT_LOG_BYTES,
    MAX_LOG_BYTES,
    argv_field,
    cwd_field,
    env_field,
    int_field,
    job_field,
    jobs_field,
    rank_field,
    rank_gpus_field,
    signal_field,
)
from factoryctl.agent.ranks import RankStore
from factoryctl.agent.sampler import DEFAULT_SLOW_INTERVAL_S, GpuSampler, node_sample
from factoryctl.agent.schedule import next_due, read_clocks, stream_max_age


def _no_driver(exc: DriverUnavailable) -> RequestError:
    return RequestError("driver", str(exc), reason=NO_DRIVER)


class AgentServer:
    """Serves one controller session over a pair of text streams."""

    def __init__(
        self,
        node: str,
        backend: str,
        nvml: NvmlSession,
        out: IO[str],
        inject: Optional[Callable[[str, Optional[List[int]], Optional[int]], Dict[str, Any]]] = None,
        limits_lock: Optional[LimitsLock] = None,
        ranks: Optional[RankStore] = None,
    ) -> None:
        """`limits_lock` is the node's, shared with its other agents; None only serialises this agent's own changes.

        `ranks` keeps the node's job ranks (factoryctl.agent.ranks); None refuses the job ops.
        """
        self.node = node
        self.backend = backend
        self.nvml = nvml
        self.out = out
        self.inject_fault = inject
        self.limits_lock = limits_lock
        self.ranks = ranks
        self.sampler = GpuSampler(nvml)
        self.host = HostSampler()
        self.output = Outbox(out)
        self._sample_lock = threading.Lock()
        self._streams: Dict[RequestId, Tuple[threading.Thread, threading.Event]] = {}
        self._count: Optional[int] = None
        self.running = True

    # -- output ------------------------------------------------------------------------------------------------

    def write(self, message: AgentMessage) -> None:
        """Queue one JSON line (the hello, a reply) ahead of the streams' samples; BrokenPipeError when none can go."""
        self.output.reply(encode(message))

    def hello(self) -> Hello:
        """The first line: versions, backend, node and GPU count (null plus `error` when NVML cannot start)."""
        msg: Hello = {
            "type": "hello",
            "agent_version": __version__,
            "protocol": PROTOCOL_VERSION,
            "backend": self.backend,
            "node": self.node,
            "python": platform.python_version(),
            "pid": os.getpid(),  # so a controller can end an agent that stopped answering (SIGSTOP, hung)
            "gpus": None,
        }
        try:
            msg["gpus"] = count = self.gpu_count()
            self.sampler.watch_xids(count)  # from the start, so no XID between hello and a sample is missed
            version, _ = self.nvml.query("nvmlSystemGetDriverVersion")
            msg["driver_version"] = version
        except DriverUnavailable as exc:
            msg["error"] = error_object("driver", str(exc), NO_DRIVER)
        return msg

    # -- helpers -----------------------------------------------------------------------------------------------

    def gpu_count(self) -> int:
        """Number of GPUs (read once)."""
        if self._count is None:
            self._count = self.nvml.device_count()
        return self._count

    def sample(self, slow_max_age: Optional[float] = None) -> WireSample:
        """A node sample; RequestError(driver) when NVML is unavailable.

        The slow tier is reused while younger than `slow_max_age` seconds; None reads every field now.
        """
        with self._sample_lock:
            try:
                count = self.gpu_count()
                sample = node_sample(self.sampler, count, self.backend, self.host.sample(), slow_max_age)
                return cast(WireSample, sample)  # the sampler builds its shape (no check: once per interval)
            except DriverUnavailable as exc:
                raise _no_driver(exc) from None

    def _gpu_indexes(self, req: Dict[str, Any]) -> List[int]:
        count = self.gpu_count_or_error()
        value = gpus_field(req)
        if value is None:
            return list(range(count))
        bad = [g for g in value if not 0 <= g < count]
        if bad:
            raise RequestError("usage", f"no GPU {bad[0]} (it has GPUs 0-{count - 1})")
        return sorted(set(value))

    # -- operations --------------------------------------------------------------------------------------------

    def op_sample(self, req: Dict[str, Any]) -> WireSample:
        """`sample`: one node sample."""
        return self.sample()

    def op_stream(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`stream`: a sample every `interval_s` until `stop`; the slow tier read every `slow_interval_s`."""
        interval = seconds_field(req, "interval_s", 1.0)
        max_age = stream_max_age(interval, seconds_field(req, "slow_interval_s", DEFAULT_SLOW_INTERVAL_S))
        stream_id = req.get("id")
        check_new_stream(stream_id, self._streams)
        self.gpu_count_or_error()  # refuse a stream the driver cannot feed
        stop = threading.Event()
        thread = threading.Thread(
            target=self._stream_loop, args=(stream_id, interval, max_age, stop), name=f"stream-{stream_id}", daemon=True
        )
        self._streams[stream_id] = (thread, stop)
        # The reply must precede the first sample: start the thread after the reply is written (see handle()).
        return {"streaming": True}

    def gpu_count_or_error(self) -> int:
        """GPU count or RequestError(driver)."""
        try:
            return self.gpu_count()
        except DriverUnavailable as exc:
            raise _no_driver(exc) from None

    def _stream_loop(
        self, stream_id: RequestId, interval: float, slow_max_age: Optional[float], stop: threading.Event
    ) -> None:
        """Sample now, then on wall-clock multiples of the interval, as every node does (factoryctl.agent.schedule).

        Each sample is queued for the writer (factoryctl.agent.outbox), never waited for: a reader that stalls does
        not move the schedule. The stream ends at `stop`, or once its output is gone.
        """
        due = time.monotonic()
        limit = backlog_limit(interval)
        while not stop.is_set():
            msg: Union[SampleMessage, ErrorSampleMessage]
            try:
                msg = {"id": stream_id, "type": "sample", "result": self.sample(slow_max_age)}
            except RequestError as exc:
                msg = error_sample(stream_id, exc.error())
            except Exception as exc:  # a bug must not kill the stream silently
                msg = error_sample(stream_id, error_object("agent", repr(exc)))
            try:
                self.output.sample(stream_id, encode(msg), limit, unless=stop)
            except BrokenPipeError:
                return
            mono_now, wall_now, spread = read_clocks(time.monotonic, time.time)
            due = next_due(due, mono_now, wall_now, interval, spread)
            stop.wait(max(0.0, due - time.monotonic()))

    def op_stop(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`stop`: end the stream `stream` (every stream when absent), giving up its samples not yet written.

        So none of them follows the reply, which goes out before queued samples; `missed` counts them (absent: none).
        """
        target = stream_field(req)
        ids = list(self._streams) if target is None else [target] if target in self._streams else []
        missed = 0
        for stream_id in ids:
            _, event = self._streams.pop(stream_id)
            event.set()  # first: the stream queues nothing more
            missed += self.output.discard(stream_id)
        result: Dict[str, Any] = {"stopped": bool(ids)}
        if missed:
            result["missed"] = missed
        return result

    def _set_limits(self, indexes: List[int], targets: Dict[int, Tuple[float, bool]]) -> Dict[str, Any]:
        """Set each GPU in turn; a failure part-way is an error that lists the GPUs already set (their audit).

        A GPU lost just after its set is listed with `enforced_w` null: its limit changed, to a value it cannot tell.
        """
        results: List[Dict[str, Any]] = []
        for i in indexes:
            watts, clamped = targets[i]
            try:
                handle = self.nvml.handle(i)
                before, _ = self.nvml.query("nvmlDeviceGetEnforcedPowerLimit", handle)
                self.nvml.invoke("nvmlDeviceSetPowerManagementLimit", handle, round(watts * 1000))
            except Exception as exc:  # lost before or during its set, refused, a bug: what changed is still told
                kind, message, reason = self._set_error(i, exc)
                raise RequestError(kind, message, {"gpus": results}, reason) from None
            try:
                after, _ = self.nvml.query("nvmlDeviceGetEnforcedPowerLimit", handle)
            except GpuLost:
                after = None
            results.append(
                {
                    "index": i,
                    "before_w": before / 1000.0 if before is not None else None,
                    "enforced_w": after / 1000.0 if after is not None else None,
                    "clamped": clamped,
                }
            )
        return {"gpus": results}

    def _set_error(self, index: int, exc: Exception) -> Tuple[ErrorKind, str, str]:
        """(kind, message, reason) of a set of GPU `index` that failed with `exc`.

        No message names the node: the client puts it in front of every error it reports (`n1: GPU 2 is lost`).
        """
        code = getattr(exc, "value", None)
        c = self.nvml.constant
        if code == c("NVML_ERROR_NO_PERMISSION", 4):
            return "driver", f"setting a power limit needs root (GPU {index}: insufficient permissions)", NEEDS_ROOT
        if code == c("NVML_ERROR_NOT_SUPPORTED", 3) or isinstance(exc, AttributeError):
            return "unsupported", f"GPU {index} does not support setting a power limit", UNSUPPORTED
        if code == c("NVML_ERROR_GPU_IS_LOST", 15) or isinstance(exc, GpuLost):
            return "driver", f"GPU {index} is lost", GPU_LOST
        if isinstance(exc, DriverUnavailable):
            return "driver", str(exc), NO_DRIVER
        return "driver", f"setting GPU {index}'s power limit failed: {exc}", DRIVER_FAILED

    def _ranges(self, indexes: List[int]) -> Dict[int, Tuple[float, float, float]]:
        """GPU -> (min, max, default) limits in watts; RequestError when a GPU cannot tell."""
        out: Dict[int, Tuple[float, float, float]] = {}
        for i in indexes:
            try:
                handle = self.nvml.handle(i)
                limits, why = self.nvml.query("nvmlDeviceGetPowerManagementLimitConstraints", handle)
                default, why2 = self.nvml.query("nvmlDeviceGetPowerManagementDefaultLimit", handle)
            except GpuLost:
                # the other GPUs go as a field, for the client's hint (transport/agent_errors.py), not in the message
                others = [g for g in range(self.gpu_count()) if g != i]
                message = f"GPU {i} is lost; nothing was changed"
                raise RequestError("driver", message, reason=GPU_LOST, other_gpus=others) from None
            except DriverUnavailable as exc:
                raise _no_driver(exc) from None
            if limits is None or default is None:
                raise RequestError(
                    "unsupported",
                    f"GPU {i} does not report its power limit range ({why or why2})",
                    reason=UNSUPPORTED,
                )
            out[i] = (limits[0] / 1000.0, limits[1] / 1000.0, default / 1000.0)
        return out

    @contextlib.contextmanager
    def _changing_limits(self, req: Dict[str, Any]) -> Iterator[None]:
        """The node's limits held against its other agents (waiting at most `lock_timeout_s`), then this agent's.

        So a change's read-set-read is never interleaved with another's, and the before and after it reports are
        true. The caller resolves the GPUs first, so a node without a driver answers that, not a lock problem.
        """
        try:
            wait = requested_wait(req)
        except ValueError as exc:
            raise RequestError("usage", str(exc)) from None
        with contextlib.ExitStack() as held:
            if self.limits_lock is not None:
                try:
                    held.enter_context(self.limits_lock.held(wait, self.output.reader_gone))
                except LimitsLockGivenUp:
                    message = "its client went away while it waited for its limits lock; nothing was changed"
                    raise RequestError("agent", message) from None
                except LimitsLockTimeout as exc:
                    raise RequestError(
                        "driver",
                        f"another change of its power limits was still running after {wait:g} s (it holds "
                        f"{exc.path}); nothing was changed: try again once it has ended.",
                        reason=LOCK_BUSY,
                    ) from None
                except LimitsLockError as exc:
                    message = f"cannot lock its power limits: {exc}; nothing was changed"
                    raise RequestError("driver", message, reason=LOCK_UNUSABLE) from None
            with self._sample_lock:
                yield

    def op_set_power_limit(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`set_power_limit`: validate every GPU first, change nothing when one is out of range (unless clamp)."""
        watts = watts_field(req)
        clamp = bool_field(req, "clamp", False)
        indexes = self._gpu_indexes(req)  # no such GPU, no driver: refused without waiting
        with self._changing_limits(req):
            ranges = self._ranges(indexes)
            targets: Dict[int, Tuple[float, bool]] = {}
            for i in indexes:
                lo, hi, _ = ranges[i]
                if lo <= watts <= hi:
                    targets[i] = (float(watts), False)
                elif clamp:
                    targets[i] = (min(max(float(watts), lo), hi), True)
                else:
                    raise RequestError(
                        "usage",
                        f"{watts:g} W is outside the power limit range of GPU {i} ({lo:g}-{hi:g} W); "
                        "nothing was changed",
                    )
            return self._set_limits(indexes, targets)

    def op_reset_power_limit(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`reset_power_limit`: each GPU back to its default limit."""
        indexes = self._gpu_indexes(req)
        with self._changing_limits(req):
            ranges = self._ranges(indexes)
            return self._set_limits(indexes, {i: (ranges[i][2], False) for i in indexes})

    def op_inject(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`inject`: a fault on a simulated node; a usage error on a real one."""
        if self.inject_fault is None:
            raise RequestError("usage", "not a simulated node; faults can only be injected in simulation")
        fault = req.get("fault")
        xid = req.get("xid")
        if not isinstance(fault, str):
            raise RequestError("usage", "fault must be one of xid, ecc, lost, hot, reset, reboot")
        if xid is not None and (isinstance(xid, bool) or not isinstance(xid, int)):
            raise RequestError("usage", "xid must be an integer XID code")
        with self._sample_lock:
            indexes = self._gpu_indexes(req)
            try:
                injected = self.inject_fault(fault, indexes, xid)
            except ValueError as exc:
                raise RequestError("usage", str(exc)) from None
            if fault == "reboot" and self.ranks is not None:
                self.ranks.power_cut()  # a reboot ends the node's job ranks too
            self.sampler.refresh(indexes)  # the agent changed them itself: the next sample shows every tier
            return {"injected": injected}

    def op_clock(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`clock`: the node's time now, for the client to tell a late sample from a clock behind (a round trip)."""
        return {"time": time.time()}

    def _rank_store(self) -> RankStore:
        if self.ranks is None:
            raise RequestError("usage", "this agent keeps no job ranks")
        return self.ranks

    def op_launch(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`launch`: start a job's rank detached, once (again: its record, `already` true)."""
        job, rank = job_field(req), rank_field(req)
        try:
            count: Optional[int] = self.gpu_count()
        except DriverUnavailable:  # a node without its driver still runs commands; its GPUs cannot be checked
            count = None
        spec = {"argv": argv_field(req), "env": env_field(req), "gpus": rank_gpus_field(req, count)}
        return self._rank_store().launch(job, rank, {**spec, "cwd": cwd_field(req)})

    def op_ranks(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`ranks`: the launched ranks of `jobs` (null: every job), running or how they ended (`running`: live only)."""
        return {"ranks": self._rank_store().ranks(jobs_field(req), bool_field(req, "running", False))}

    def op_kill(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`kill`: TERM or KILL each rank's process group of a job."""
        job, signal_name = job_field(req), signal_field(req)
        return {"signalled": self._rank_store().kill(job, signal_name)}

    def op_logs(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`logs`: a piece of a rank's output (from the end with a negative `offset`)."""
        job, rank = job_field(req), rank_field(req)
        offset = int_field(req, "offset", 0, -(2**62), 2**62)
        limit = int_field(req, "limit", DEFAULT_LOG_BYTES, 1, MAX_LOG_BYTES)
        return self._rank_store().logs(job, rank, offset, limit)

    def op_shutdown(self, req: Dict[str, Any]) -> Dict[str, Any]:
        """`shutdown`: reply, then exit 0."""
        self.running = False
        return {"bye": True}

    # -- loop --------------------------------------------------------------------------------------------------

    def handle(self, line: str) -> None:
        """Answer one request line; a line the agent cannot read gets an `agent` error with a null id."""
        try:
            req = read_request(line)
        except RequestError as unreadable:
            self.write(unreadable.reply(None))
            return
        req_id = req.get("id")
        try:
            op = op_field(req)
        except RequestError as refused:
            self.write(refused.reply(req_id))
            return
        try:
            result = getattr(self, f"op_{op}")(req)
        except RequestError as exc:
            self.write(exc.reply(req_id))
            return
        except Exception as exc:  # a bug: report it, keep serving
            print(f"factoryctl-agent: {op} failed: {exc!r}", file=sys.stderr)
            self.write(RequestError("agent", f"{op} failed: {exc!r}").reply(req_id))
            return
        self.write(ok_reply(req_id, result))
        if op == "stream" and req_id in self._streams:
            self._streams[req_id][0].start()

    def serve(self, stdin: IO[str]) -> int:
        """Write hello, answer requests until shutdown or EOF; returns the exit status.

        Every reply is written before it returns; the streams' queued samples are given up (they were stopped).
        """
        self.output.start()
        try:
            self.write(self.hello())
            while self.running:
                line = stdin.readline()
                if not line:
                    break
                if line.strip():
                    self.handle(line)
        except BaseException:  # a broken pipe, Ctrl-C: no waiting for a writer that may be blocked for good
            self.op_stop({})
            raise
        self.op_stop({})
        self.output.close()
        self.nvml.shutdown()
        return 0
