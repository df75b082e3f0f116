"""The client side of the agent's JSON-lines protocol (docs/agent-protocol.md), over any pair of byte streams.

The local transport hands it a subprocess's pipes, the SSH transport a channel's files; everything above talks to
nodes only through this class. Every wait has a timeout, a dead or babbling agent becomes a `NodeError` of kind
`agent`, and a refused request (`usage`) becomes a `UsageError` so nothing is changed silently. The reader thread
never dies quietly: whatever ends it fails the session with a reason, so waiters wake at once and the caller, which
watches `failure`, reconnects. The protocol's version, op names and error reasons are factoryctl.agent.protocol's,
the agent's own definitions; every message received is still read as untrusted JSON.
A `NodeError`'s message never starts with its node's name: the error's `node` names it (a listing's `errors` entry
has it as `node`, the stderr summary and the controller's log write it once before the message). A `UsageError`
has no node of its own, so its message does start with it (the fan-out takes it out again: `fanout.as_node_error`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

from factoryctl.agent.protocol import PROTOCOL_VERSION, Op
from factoryctl.errors import NodeError, UsageError
from factoryctl.model.telemetry import GpuSample, HostSample, NodeSample, number_or_none
from factoryctl.transport.agent_errors import agent_hint, limits_lock_wait, node_error_of
from factoryctl.transport.hints import AGENT_HANG_HINT
from factoryctl.transport.node_text import last_words, node_said, quoted

_CLOSED = object()
#: What building a `NodeSample` from a wire sample raises when the sample is not one (a GPU that is not an object...).
_MALFORMED = (TypeError, ValueError, AttributeError, KeyError)

log = logging.getLogger("factoryctl.transport")

_Delivered = TypeVar("_Delivered")
#: A stream's callbacks: its samples, the samples its agent could not take (None: those are dropped), and how many
#: samples the agent dropped from its output backlog (`missed`, docs/agent-protocol.md; None: not counted).
_Stream = tuple[Callable[[NodeSample], None], Callable[[NodeError], None] | None, Callable[[int], None] | None]


def missed_count(value: object) -> int:
    """A message's `missed` (samples the agent dropped while its output waited): an int above 0, else 0."""
    return value if type(value) is int and value > 0 else 0


class PartlyDone(NodeError):
    """An error reply that also says what the agent had done before it failed, in `result`.

    A power-limit request the driver fails part-way lists the GPUs already changed (docs/agent-protocol.md): they
    must still reach the audit log, so the error carries them instead of dropping them.
    """

    def __init__(self, failed: NodeError, result: dict[str, Any]) -> None:
        super().__init__(failed.node, failed.kind, failed.message, failed.hint)
        self.result = result


class AgentSession:
    """One running agent: request/reply by id, plus streamed samples delivered to a callback."""

    def __init__(
        self,
        node: str,
        stdin: IO[bytes],
        stdout: IO[bytes],
        on_close: Callable[[], None] | None = None,
        stderr_tail: Callable[[], str] | None = None,
        cut_off: Callable[[], NodeError | None] | None = None,
        connection_dead: Callable[[], bool] | None = None,
    ) -> None:
        """Start reading the agent's output at once.

        `cut_off` says, when that output ends, whether the connection under it was lost: the error to report then,
        instead of "the agent exited", which is what an agent that really exited gets. `connection_dead` says, when
        the session closes, whether the connection is known dead, so no `shutdown` is asked that could not arrive.
        """
        self.node = node
        self._stdin = stdin
        self._stdout = stdout
        self._on_close = on_close
        self._stderr_tail = stderr_tail
        self._cut_off = cut_off
        self._connection_dead = connection_dead
        self._ids = itertools.count(1)
        #: The requests waiting for a reply, by id: the op asked (`give_up` picks by it) and where the reply goes.
        self._pending: dict[int, tuple[str, queue.Queue[Any]]] = {}
        #: When the agent last wrote a line (monotonic): `close` says how long it had been silent.
        self._heard_at = time.monotonic()
        self._streams: dict[int, _Stream] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._hello: queue.Queue[Any] = queue.Queue(maxsize=1)
        self.hello_info: dict[str, Any] = {}
        self.failure: NodeError | None = None
        self.callback_errors = 0  # exceptions raised by `stream`'s on_sample or on_error (see `_deliver`)
        self.shutdown_answered = False  # `close` asked the agent to exit and it said it would
        self._on_failure: list[threading.Event] = []  # set when the session fails (see `wake_on_failure`)
        self._reader = threading.Thread(target=self._read_loop, name=f"agent-{node}", daemon=True)
        self._reader.start()

    # ------------------------------------------------------------------ reading

    def _read_loop(self) -> None:
        try:
            for raw in self._stdout:
                self._heard_at = time.monotonic()
                if not self._dispatch(raw):
                    break
        except (OSError, ValueError) as exc:
            self._fail(f"the agent's output broke off ({exc})")
        except Exception as exc:  # a bug of ours: still end the session with a reason, never with a dead thread
            log.debug("%s: the agent session's reader failed", self.node, exc_info=True)
            self._fail(f"the agent session failed ({type(exc).__name__}: {exc})")
        else:
            self._ended("the agent exited")

    def _dispatch(self, raw: bytes) -> bool:
        line = raw.strip()
        if not line:
            return True
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            self._fail(f"the agent sent garbage: {quoted(line)}")
            return False
        if isinstance(message.get("id"), (list, dict)):  # no id of ours (an int), and unhashable: no lookup by it
            self._fail(f"the agent sent a malformed message (its id is not a number): {quoted(line)}")
            return False
        if message.get("type") == "hello":
            return self._said_hello(message)
        elif message.get("type") == "sample" and message.get("id") in self._streams:
            on_sample, on_error, on_missed = self._streams[message["id"]]
            missed = missed_count(message.get("missed"))  # on a good sample and an error sample alike
            if missed and on_missed is not None:
                self._deliver(on_missed, missed)
            if message.get("ok") is False:  # a sample the agent could not take: its error, never an empty sample
                self._sample_failed(message.get("error"), on_error)
                return True
            try:
                sample = self._to_sample(message.get("result") or {})
            except _MALFORMED as exc:
                self._fail(f"the agent sent a malformed sample ({node_said(exc)}): {quoted(line)}")
                return False
            self._deliver(on_sample, sample)
        else:
            pending = self._pending.pop(message.get("id", -1), None)
            if pending is not None:  # None: a reply nobody waits for any more (given up, or timed out)
                pending[1].put(message)
        return True

    def _said_hello(self, message: dict[str, Any]) -> bool:
        """The hello, once (docs/agent-protocol.md); another fails the session (False): it blocked this reader for good."""
        if self.hello_info:
            self._fail("the agent said hello a second time, in the middle of its session")
            return False
        self.hello_info = message
        with contextlib.suppress(queue.Full):
            self._hello.put_nowait(message)
        return True

    def _sample_failed(self, error: object, on_error: Callable[[NodeError], None] | None) -> None:
        """A streamed `ok: false` sample (the driver could not be read): its error to the stream's `on_error`.

        It carries no `result`: made into a sample, it was a node `up` with no GPU, stamped 1970, which hid the
        failure and, counted as heard, kept the link from ever reconnecting. The stream goes on (the next sample may
        be fine), so the session does not fail for it.
        """
        failed = self._node_error("sample", error)
        if on_error is None:
            log.debug("%s: a streamed sample failed: %s", self.node, failed.message)
            return
        self._deliver(on_error, failed)

    def _deliver(self, callback: Callable[[_Delivered], None], value: _Delivered) -> None:
        """Hand a stream's sample (or its error) to the caller's callback; an exception from it is logged and counted.

        The callback is the caller's code (the controller's store sink, the dashboard's history), not the agent's:
        the agent and its connection are fine. Failing the session would only make every link reconnect into the
        same bug again and again, and would stop the replies to requests (power limits) this reader also delivers.
        The first failure of a session is logged as one warning (a traceback only at debug level: on the dashboard,
        stderr is the screen); `callback_errors` counts them all.
        """
        try:
            callback(value)
        except Exception as exc:
            self.callback_errors += 1
            first = self.callback_errors == 1
            log.log(
                logging.WARNING if first else logging.DEBUG,
                "%s: handling a sample failed (%s: %s); the session goes on",
                self.node,
                type(exc).__name__,
                exc,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )

    def _ended(self, why: str) -> None:
        """Fail the session as the agent's pipe ended: with `cut_off`'s lost connection if it says so, else with `why`."""
        lost = self._cut_off() if self._cut_off else None
        if lost is not None:
            self._fail_with(lost)
        else:
            self._fail(why)

    def _fail(self, why: str) -> None:
        detail = last_words(self._stderr_tail()) if self._stderr_tail else ""
        self._fail_with(NodeError(self.node, "agent", f"{why}{detail}.", agent_hint(self.node)))

    def _fail_with(self, error: NodeError) -> None:
        if self.failure is None:
            self.failure = error
        with contextlib.suppress(queue.Full):  # a hello already waiting is read first: it is not lost
            self._hello.put_nowait(_CLOSED)
        with self._lock:
            waiters = [waiter for _, waiter in self._pending.values()]
            self._pending.clear()
            wakes = list(self._on_failure)
        for waiter in waiters:
            waiter.put(_CLOSED)
        for wake in wakes:
            wake.set()

    def wake_on_failure(self, event: threading.Event) -> None:
        """Set `event` when the session fails (at once if it has): its link sleeps on it, not looking twice a second."""
        with self._lock:
            self._on_failure.append(event)
            failed = self.failure is not None
        if failed:
            event.set()

    # ------------------------------------------------------------------ requests

    def wait_hello(self, timeout: float) -> dict[str, Any]:
        """Wait for the agent's hello and check the protocol version."""
        try:
            message = self._hello.get(timeout=timeout)
        except queue.Empty:
            said = f"the agent did not say hello within {timeout:g} s."
            raise NodeError(self.node, "timeout", said, AGENT_HANG_HINT.format(node=self.node)) from None
        if message is _CLOSED:
            assert self.failure is not None
            raise self.failure
        if message.get("protocol") != PROTOCOL_VERSION:
            raise NodeError(
                self.node,
                "agent",
                f"the agent speaks protocol {node_said(message.get('protocol'))}, "
                f"this factoryctl speaks {PROTOCOL_VERSION}.",
                "this factoryctl ships the agent from its own files, so they changed while it ran (an upgrade?): run the "
                "command again.",
            )
        return dict(message)

    def request(self, op: Op, timeout: float = 10.0, **args: object) -> dict[str, Any]:
        """Send one request and wait for its reply's result."""
        silence = f"the agent did not answer `{op}` in {timeout:g} s."
        _, reply = self._exchange({"op": op, **args}, timeout, silence)
        return self._result(op, reply)

    def _exchange(
        self,
        message: dict[str, Any],
        timeout: float,
        silence: str,
        stream: _Stream | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send `message` under a new id and wait for the reply; `silence` is the error when none comes in time.

        With `stream`, samples streamed under the same id go to its callbacks from the reader thread.
        """
        if self.failure is not None:
            raise self.failure
        request_id = next(self._ids)
        waiter: queue.Queue[Any] = queue.Queue(maxsize=1)
        with self._lock:
            self._pending[request_id] = (str(message["op"]), waiter)
            if stream is not None:
                self._streams[request_id] = stream
        self._send({"id": request_id, **message})
        try:
            reply = waiter.get(timeout=timeout)
        except queue.Empty:
            self._pending.pop(request_id, None)
            raise NodeError(self.node, "timeout", silence) from None
        if reply is _CLOSED:
            assert self.failure is not None
            raise self.failure
        if isinstance(reply, NodeError):  # given up on (`give_up`), or the session closed under it (`close`)
            raise reply
        return request_id, reply

    def give_up(self, op: Op, error: NodeError) -> int:
        """Wake every request of `op` still waiting for its reply, raising `error`; returns how many there were.

        The session goes on (its stream too): a reply that comes later is dropped. For a caller that knows the node
        stopped answering before the request's own timeout (the dashboard's judge took it down), so a power cap to a
        hung node ends when the node is judged down, not when its link gives up on the session.
        """
        with self._lock:
            ids = [request_id for request_id, (asked, _) in self._pending.items() if asked == op]
            waiters = [self._pending.pop(request_id)[1] for request_id in ids]
        for waiter in waiters:
            waiter.put(error)
        return len(waiters)

    def _result(self, op: Op, reply: dict[str, Any]) -> dict[str, Any]:
        """The reply's result, or its error raised: `PartlyDone` when the error reply says what was done first."""
        if reply.get("ok"):
            return dict(reply.get("result") or {})
        error = reply.get("error")
        if isinstance(error, dict) and error.get("kind") == "usage":
            raise UsageError(f"{self.node}: {node_said(error.get('message', 'unknown error'))}", None)
        failed = self._node_error(op, error)
        done = reply.get("result")
        if isinstance(done, dict) and done:
            raise PartlyDone(failed, done)
        raise failed

    def _node_error(self, op: Op, error: object) -> NodeError:
        """The `NodeError` of an error reply's (or error sample's) `error` (`agent_errors.node_error_of`)."""
        return node_error_of(self.node, op, error, self.hello_info.get("backend"))

    def _send(self, message: dict[str, Any]) -> None:
        data = (json.dumps(message) + "\n").encode()
        try:
            with self._write_lock:
                self._stdin.write(data)
                self._stdin.flush()
        except (OSError, ValueError, EOFError) as exc:  # EOFError: paramiko's, when the connection died mid-send
            self._ended(f"cannot write to the agent ({exc or type(exc).__name__})")
            assert self.failure is not None
            raise self.failure from None

    # ------------------------------------------------------------------ typed helpers

    def _to_sample(self, result: dict[str, Any]) -> NodeSample:
        """A node sample from its wire form; ValueError, TypeError or AttributeError when it is not one."""
        stamp = number_or_none(result.get("time", 0.0))
        if stamp is None:
            raise ValueError(f"its time {result.get('time')!r:.40} is not a number")
        return NodeSample(
            node=self.node,
            time=float(stamp),
            state="up",
            agent_version=self.hello_info.get("agent_version"),
            backend=result.get("backend") or self.hello_info.get("backend"),
            gpus=tuple(GpuSample.from_json(self.node, g) for g in result.get("gpus") or ()),
            host=HostSample.from_json(result.get("host") or {}),
        )

    def sample(self, timeout: float = 10.0) -> NodeSample:
        """One telemetry sample of the node (a malformed one fails the session, as it does in a stream)."""
        result = self.request("sample", timeout=timeout)
        try:
            return self._to_sample(result)
        except _MALFORMED as exc:
            self._fail(f"the agent sent a malformed sample ({exc})")
            assert self.failure is not None
            raise self.failure from None

    def stream(
        self,
        interval_s: float,
        on_sample: Callable[[NodeSample], None],
        timeout: float = 10.0,
        slow_interval_s: float | None = None,
        on_error: Callable[[NodeError], None] | None = None,
        on_missed: Callable[[int], None] | None = None,
    ) -> int:
        """Start streaming samples to `on_sample` (called on the reader thread); returns the stream id.

        `slow_interval_s` is how often the agent re-reads the slow tier (temperature, ECC, memory, energy); the
        agent's default (5 s) when None. A sample the agent could not take (`ok: false`: the driver failed) goes to
        `on_error` as the `NodeError` a `sample` request would have raised, and the stream goes on; without
        `on_error` it is dropped (never handed to `on_sample`). `on_missed` gets each count of samples the agent
        dropped while its output waited for a reader (a message's `missed`); a `stop` reply's `result` says the rest.
        """
        silence = "the agent did not start streaming."
        request: dict[str, Any] = {"op": "stream", "interval_s": interval_s}
        if slow_interval_s is not None:
            request["slow_interval_s"] = slow_interval_s
        request_id, reply = self._exchange(request, timeout, silence, (on_sample, on_error, on_missed))
        self._result("stream", reply)
        return request_id

    def set_power_limit(
        self, watts: float, gpus: list[int] | None = None, clamp: bool = False, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """Set GPU power limits; each answer is `{index, before_w, enforced_w, clamped}`.

        A set the driver fails part-way raises `PartlyDone`, its `result["gpus"]` the answers of the GPUs already set.
        """
        lock_wait = limits_lock_wait(timeout)
        result = self.request(
            "set_power_limit", timeout=timeout, gpus=gpus, watts=watts, clamp=clamp, lock_timeout_s=lock_wait
        )
        return list(result.get("gpus") or [])

    def reset_power_limit(self, gpus: list[int] | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Reset GPU power limits to their defaults; each answer as `set_power_limit`'s."""
        result = self.request("reset_power_limit", timeout=timeout, gpus=gpus, lock_timeout_s=limits_lock_wait(timeout))
        return list(result.get("gpus") or [])

    def launch_rank(
        self,
        job_id: str,
        rank: int,
        argv: list[str],
        env: dict[str, str],
        gpus: list[int],
        cwd: str | None,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Start a job's rank on the node, detached (docs/agent-protocol.md, Job ranks): `{pid, started_at, already}`.

        Idempotent: a rank launched before answers its record with `already` true. A command that cannot start (no
        such program, no such directory) is a `UsageError`.
        """
        args = {"job": job_id, "rank": rank, "argv": argv, "env": env, "gpus": gpus, "cwd": cwd}
        return self.request("launch", timeout=timeout, **args)

    def ranks(self, job_ids: list[str] | None, timeout: float = 10.0, running: bool = False) -> list[dict[str, Any]]:
        """The node's ranks of `job_ids` (None: of every job; `running`: the live ones only), as the agent sent them.

        Each is `{job, rank, pid, running, exit_code, started_at, ended_at, gpus}`, untrusted: the caller checks
        each field it reads.
        """
        result = self.request("ranks", timeout=timeout, jobs=job_ids, **({"running": True} if running else {}))
        found = result.get("ranks")
        return [entry for entry in found if isinstance(entry, dict)] if isinstance(found, list) else []

    def kill_ranks(self, job_id: str, signal: str = "TERM", timeout: float = 10.0) -> list[int]:
        """Send TERM or KILL to each rank's process group of `job_id` on the node; the ranks signalled."""
        signalled = self.request("kill", timeout=timeout, job=job_id, signal=signal).get("signalled")
        return [r for r in signalled if type(r) is int] if isinstance(signalled, list) else []

    def rank_log(self, job_id: str, rank: int, offset: int, limit: int, timeout: float = 10.0) -> dict[str, Any]:
        """Up to `limit` bytes (at most 1 MiB) of a rank's output from `offset` (below 0: from the end).

        As `{data, offset, size}`: `offset` is where the next read starts, `size` the log's size then.
        """
        return self.request("logs", timeout=timeout, job=job_id, rank=rank, offset=offset, limit=limit)

    def _closed_by_us(self) -> NodeError:
        """The failure of a session its owner closes: how long the agent had been silent, when that is why.

        A link closes a session that went silent (its stall watch), and the agent is ended after: its output's end
        then read as "the agent exited", which sent the operator looking for a crash that never happened.
        """
        silent_s = time.monotonic() - self._heard_at
        if silent_s >= 1.0:
            said = f"the agent sent nothing for {silent_s:.0f} s, so factoryctl ended its session."
            return NodeError(self.node, "timeout", said, agent_hint(self.node))
        return NodeError(self.node, "agent", "factoryctl closed the session before the agent answered.", None)

    def _wake_pending(self, error: NodeError) -> None:
        """Wake every request still waiting, raising `error` (the session itself is not failed by it)."""
        with self._lock:
            waiters = [waiter for _, waiter in self._pending.values()]
            self._pending.clear()
        for waiter in waiters:
            waiter.put(error)

    def close(self, timeout: float = 2.0) -> None:
        """Ask the agent to exit (unless the connection is known dead: no answer could come), then release the streams.

        Its stdout is closed last, after `on_close` ended the agent (or its channel): the reader thread holds that
        stream while it waits for a line, so closing it first waited for an agent that might never write again
        (one stopped with SIGSTOP held the link's teardown until SIGCONT).
        """
        dead = self._connection_dead is not None and self._connection_dead()
        if self.failure is None:  # ended by its owner, not by the agent: what still waits is told so, not "exited"
            closed = self._closed_by_us()
            self._wake_pending(closed)
            if not dead:
                with contextlib.suppress(NodeError, UsageError):
                    self.request("shutdown", timeout=timeout)
                    self.shutdown_answered = True
            self._fail_with(closed)  # the output's end that follows is ours, not the agent's exit
        with contextlib.suppress(OSError):
            self._stdin.close()
        if self._on_close:
            self._on_close()
        with contextlib.suppress(OSError):
            self._stdout.close()
