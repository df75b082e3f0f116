"""Step-by-step diagnosis of how a node is reached (`nodes check`) and host-key scanning (`nodes trust`).

`check_node` walks the path a connection takes — DNS, TCP, SSH banner, host key, authentication, the node's
Python, the agent's hello (version and protocol skew), the driver, an NVML sample — and stops at the first failure,
naming what to fix. `scan_host_key` does only the handshake and reports the server's key without authenticating,
so `nodes trust` can show the fingerprint before anything is recorded. A node behind a jump host is reached through
it, which needs the jump host's key known first: until it is, the jump host's key is the one reported.
"""

from __future__ import annotations

import re
import shlex
import shutil
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from factoryctl import __version__
from factoryctl.errors import FactoryError, NodeError
from factoryctl.model.folding import fold_indexes
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.fanout import as_node_error
from factoryctl.transport.hints import DNS_HINT, DRIVER_HINT, NO_PYTHON_HINT, hinted
from factoryctl.transport.known_hosts import HostKeyStatus
from factoryctl.transport.node_text import node_said
from factoryctl.transport.ssh import QUIET_LOGIN_HINT, SshConnection
from factoryctl.transport.ssh_config import SshTarget, resolve
from factoryctl.transport.ssh_handshake import (
    ServerKey,
    SshOptions,
    authenticate,
    read_known_hosts,
    server_key,
    start_transport,
    tcp_socket,
    verify_host_key,
)
from factoryctl.transport.ssh_node import _JUMPS

if TYPE_CHECKING:
    from collections.abc import Callable

    import paramiko

    from factoryctl.transport.base import CommandResult
    from factoryctl.transport.session import AgentSession

STEPS = ("dns", "tcp", "banner", "host_key", "auth", "python", "agent", "driver", "nvml")
MIN_PYTHON = (3, 9)
_MIN_SHOWN = ".".join(map(str, MIN_PYTHON))
_PY_VERSION = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


@dataclass
class Step:
    """One diagnosed step: `ok`, `warn` (works, but look), `fail` or `skip` (an earlier step failed)."""

    step: str
    status: str
    detail: str
    fix: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


@dataclass
class Diagnosis:
    """Every step of one node, and the error that stopped it (if any)."""

    node: str
    steps: list[Step]
    error: NodeError | None = None

    @property
    def ok(self) -> bool:
        """True when no step failed."""
        return self.error is None


def _connect_socket(node: str, target: SshTarget, options: SshOptions) -> socket.socket | paramiko.Channel:
    if target.jump is None:
        return tcp_socket(node, target, options.connect_timeout_s)
    return _JUMPS.jump(node, target.jump, options).tunnel(target)


@dataclass(frozen=True)
class ScannedKey:
    """A host key `nodes trust` shows: the node's own, or that of a jump host on the way to it."""

    key: ServerKey
    #: The known_hosts file the key is checked against: where `nodes trust` records it.
    known_hosts: str
    #: The jump host (`user@host:port`) whose key this is; None for the node's own.
    jump_host: str | None = None


def scan_host_key(spec: NodeSpec, options: SshOptions, jump_keys: JumpHostKeys | None = None) -> ScannedKey:
    """The node's host key and its known_hosts status; nothing is sent to the node but the handshake.

    A node behind jump hosts is scanned through them, which needs their keys known: the first jump host whose key
    known_hosts does not vouch for (outermost first, as ssh asks) is scanned instead, so that `nodes trust` can
    record it and then come back for the node's own key.
    """
    target = resolve(spec, options.ssh_config)
    if target.jump is not None:
        try:
            _JUMPS.jump(spec.name, target.jump, options)
        except NodeError as exc:
            if exc.kind != "host_key":
                raise
            untrusted = (jump_keys or JumpHostKeys(options)).first_untrusted(spec.name, target.jump)
            if untrusted is None:
                raise
            return untrusted
    return ScannedKey(_scan(spec.name, target, options), target.known_hosts)


def _scan(node: str, target: SshTarget, options: SshOptions) -> ServerKey:
    """The key `target` presents in the handshake, classified against its known_hosts."""
    known = read_known_hosts(target)
    transport = start_transport(node, target, _connect_socket(node, target, options), options, known)
    try:
        return server_key(transport, target, known, node)
    finally:
        transport.close()


class JumpHostKeys:
    """The keys of the jump hosts whose connection was refused for their host key, each scanned once per pass.

    However many nodes are behind a jump host, it answers one extra handshake, not one per node (500 at once
    would also meet its sshd's MaxStartups).
    """

    def __init__(self, options: SshOptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._scans: dict[tuple[str, int, str, str], Future[ServerKey]] = {}

    def first_untrusted(self, node: str, jump: SshTarget) -> ScannedKey | None:
        """The first jump host on `node`'s way (`jump` and the ones before it) whose key is not known, if any."""
        hops = [jump]
        while hops[-1].jump is not None:
            hops.append(hops[-1].jump)
        for hop in reversed(hops):  # outermost first: each is reached through the ones before it
            found = self._key(node, hop)
            if found.status is not HostKeyStatus.known:
                return ScannedKey(found, hop.known_hosts, hop.label)
        return None

    def _key(self, node: str, hop: SshTarget) -> ServerKey:
        with self._lock:
            scan = self._scans.get((*hop.key, hop.known_hosts))
            first = scan is None
            if scan is None:
                scan = self._scans[(*hop.key, hop.known_hosts)] = Future()
        if first:
            try:
                scan.set_result(_scan(node, hop, self._options))
            except Exception as exc:  # every node behind the jump host waits for this outcome: never left unset
                scan.set_exception(exc)
        try:
            return scan.result()
        except NodeError as exc:  # told as this node's, naming the jump host (a hop further out may be named already)
            message = exc.message if exc.message.startswith("jump host ") else f"jump host {hop.label}: {exc.message}"
            raise NodeError(node, exc.kind, message, exc.hint) from exc


class _Walk:
    def __init__(self, node: str) -> None:
        self.node = node
        self.steps: list[Step] = []

    def add(self, step: str, status: str, detail: str, fix: str | None = None) -> None:
        self.steps.append(Step(step, status, detail, fix))

    def next_step(self) -> str:
        """The first step not recorded yet: the one running when something unforeseen stops the walk."""
        done = {s.step for s in self.steps}
        return next((s for s in STEPS if s not in done), STEPS[-1])

    def fail(self, step: str, error: NodeError) -> Diagnosis:
        self.add(step, "fail", error.message, error.hint)
        done = {s.step for s in self.steps}
        self.steps += [Step(s, "skip", f"not reached ({step} failed)") for s in STEPS if s not in done]
        return Diagnosis(self.node, self.steps, error)


def check_node(
    spec: NodeSpec, factory: str, options: SshOptions, timeout: float, state_dir: Path | None = None
) -> Diagnosis:
    """Diagnose one node, step by step."""
    walk = _Walk(spec.name)
    try:
        if spec.transport == "local":
            return _local_steps(walk, spec, factory, timeout, state_dir)
        return _ssh_steps(walk, spec, factory, options, timeout)
    except Exception as exc:  # anything unforeseen still lands on the step it stopped: the node is never left out
        return walk.fail(walk.next_step(), as_node_error(spec.name, exc))


def failed_check(error: NodeError) -> Diagnosis:
    """The diagnosis of a node whose check ended before any step was recorded (the first step failed with `error`)."""
    walk = _Walk(error.node)
    return walk.fail(walk.next_step(), error)


def _local_steps(walk: _Walk, spec: NodeSpec, factory: str, timeout: float, state_dir: Path | None) -> Diagnosis:
    for step in STEPS[:5]:
        walk.add(step, "skip", "local transport (no SSH)")
    from factoryctl.transport.local import LocalTransport

    local = LocalTransport(spec, factory, state_dir or Path.cwd())
    try:
        found = shutil.which(local.python)
        if found is None:
            missing = f"{local.python} is not an executable found on this machine."
            return walk.fail("python", NodeError(spec.name, "agent", missing, _LOCAL_PYTHON))
        walk.add("python", "ok", f"{found} on this machine")
        by_hand = f"run the agent by hand to see what it says: `{shlex.join(local.agent_command())}`."
        return _agent_steps(walk, spec, lambda: local.start_agent(timeout), timeout, by_hand)
    finally:
        local.close()


def _ssh_steps(walk: _Walk, spec: NodeSpec, factory: str, options: SshOptions, timeout: float) -> Diagnosis:
    target = resolve(spec, options.ssh_config)
    if target.jump is None:
        try:
            infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            return walk.fail("dns", NodeError(spec.name, "dns", f"cannot resolve {target.host}: {exc.strerror}",
                                              DNS_HINT))  # fmt: skip
        walk.add("dns", "ok", f"{target.host} -> {infos[0][4][0]}")
    else:
        walk.add("dns", "ok", f"resolved by jump host {target.jump.label}")
    started = time.monotonic()
    try:
        sock = _connect_socket(spec.name, target, options)
    except NodeError as exc:
        return walk.fail("dns" if exc.kind == "dns" else "tcp", exc)
    walk.add("tcp", "ok", f"{target.address} in {(time.monotonic() - started) * 1000:.1f} ms")
    try:
        known = read_known_hosts(target)
        transport = start_transport(spec.name, target, sock, options, known)
    except NodeError as exc:
        return walk.fail("banner", exc)
    walk.add("banner", "ok", str(transport.remote_version))
    try:
        found = verify_host_key(spec.name, transport, target, known)
    except NodeError as exc:
        return walk.fail("host_key", exc)
    walk.add("host_key", "ok", f"{found.key_type} {found.fingerprint} in {target.known_hosts}")
    try:
        authenticate(spec.name, transport, target)
    except NodeError as exc:
        return walk.fail("auth", exc)
    walk.add("auth", "ok", f"as {target.user}")
    connection = SshConnection(spec.name, target, transport, options)
    try:
        return _remote_steps(walk, spec, factory, connection, options, timeout)
    finally:
        connection.close()


def _remote_steps(
    walk: _Walk, spec: NodeSpec, factory: str, connection: SshConnection, options: SshOptions, timeout: float
) -> Diagnosis:
    from factoryctl.transport.ssh_node import SshTransport

    try:
        probe = connection.run([spec.python, "-c", _PY_VERSION], timeout=timeout)
    except NodeError as exc:
        return walk.fail("python", _version_check_failed(spec, exc))
    refused = _python_step(walk, spec, probe)
    if refused is not None:
        return walk.fail("python", refused)
    ssh = SshTransport(spec, factory, connection, options)
    return _agent_steps(walk, spec, lambda: ssh.start_agent(timeout), timeout, _SSH_BY_HAND)


_NO_AGENT = "nvidia-smi fallback (read-only telemetry, -pl)"
_INSTALL_PYTHON = NO_PYTHON_HINT
_LOCAL_PYTHON = (
    "install python3 (>= 3.9) on this machine, or set the node's `python:` in factory.yaml to one that exists."
)
#: The agent step's fix when the agent failed without a fix of its own: never `nodes check` again, the command just
#: run. Said on stdout under the step, on stderr and in JSON alike, so it points at no place in the output.
_SSH_BY_HAND = (
    "the agent's last words, if it said any, end the error message; on the node, run its `python:` by hand "
    "to see that it starts and prints nothing on its own."
)


def _version_check_failed(spec: NodeSpec, error: NodeError) -> NodeError:
    """`error` of the Python version check, saying it was that command (`command did not finish ...` said none)."""
    if error.kind != "timeout":
        return error
    said = error.message.removeprefix("command ")
    return NodeError(
        error.node,
        error.kind,
        f"the version check of `{spec.python}` (its `python:`) {said}",
        f"on the node, run `{shlex.quote(spec.python)} -V` by hand to see what hangs; raise --timeout only if the "
        "node is just slow.",
    )


def _python_step(walk: _Walk, spec: NodeSpec, probe: CommandResult) -> NodeError | None:
    """Record the `python` step from the version probe's result; the error that stops the walk, if it must.

    No interpreter, or one older than 3.9, is a warning: the commands fall back to nvidia-smi then, and the steps
    after it check that fallback. An interpreter that fails, or an answer that is not a version, stops the walk.
    """
    version = probe.stdout.decode("utf-8", "replace").strip()
    parsed = re.fullmatch(r"(\d+)\.(\d+)\.\d+\S*", version)
    if probe.exit_code in (126, 127):
        walk.add("python", "warn", f"{spec.python} not found; {_NO_AGENT}", _INSTALL_PYTHON)
    elif probe.exit_code != 0:
        error = node_said(probe.stderr.decode("utf-8", "replace").strip()) or f"exit code {probe.exit_code}"
        return NodeError(spec.name, "agent", f"{spec.python} is not usable: {error}",
                         "the agent needs Python >= 3.9 on the node.")  # fmt: skip
    elif parsed is None:
        return NodeError(spec.name, "agent", f"cannot read the version of {spec.python} on the node: it printed "
                         f"{version[:80]!r}", QUIET_LOGIN_HINT)  # fmt: skip
    elif (int(parsed[1]), int(parsed[2])) < MIN_PYTHON:
        walk.add("python", "warn", f"{spec.python} {version} is older than {_MIN_SHOWN}; {_NO_AGENT}", _INSTALL_PYTHON)
    else:
        walk.add("python", "ok", f"{spec.python} {version}")
    return None


def lost_gpu_fix(spec: NodeSpec, lost: list[int]) -> str:
    """The nvml step's fix for GPUs that do not answer, the way a node like this gets them back.

    A simulated node's (`sim:` in factory.yaml) come back with a simulated driver reload, which `nvidia-smi` and
    dmesg know nothing about.
    """
    if spec.sim is None:
        return "check `nvidia-smi` and dmesg for XIDs."
    target = f"{spec.name}/{fold_indexes(lost)}"
    return (
        f"a lost simulated GPU comes back with a driver reload: `factoryctl sim inject {target} --reset` "
        "(which also clears other faults and power limits there)."
    )


def _agent_steps(
    walk: _Walk, spec: NodeSpec, start: Callable[[], AgentSession], timeout: float, by_hand: str
) -> Diagnosis:
    """The agent, driver and nvml steps; an agent that fails with no fix (or "run nodes check") is told `by_hand`."""
    try:
        session: AgentSession = start()
    except NodeError as exc:
        exc = hinted(exc)  # the one table's hint, as a poll gives it (missing Python: the Python hint)
        if exc.hint is None or "factoryctl nodes check" in exc.hint:
            exc = NodeError(exc.node, exc.kind, exc.message, by_hand)
        return walk.fail("agent", exc)
    try:
        hello = session.hello_info
        backend, agent_version = hello.get("backend"), hello.get("agent_version")
        if backend == "smi":
            walk.add("agent", "warn", "no agent (no usable Python): nvidia-smi fallback")
        elif agent_version != __version__:
            walk.add("agent", "warn", f"agent {agent_version}, factoryctl {__version__} (protocol {hello.get('protocol')})",
                     "versions differ; the agent is reshipped on the next start.")  # fmt: skip
        else:
            walk.add(
                "agent", "ok", f"agent {agent_version}, protocol {hello.get('protocol')}, python {hello.get('python')}"
            )
        gpus = int(hello.get("gpus") or 0)
        if gpus == 0:
            return walk.fail("driver", _no_gpu(walk.node, backend, hello.get("error")))
        walk.add("driver", "ok", f"backend {backend}, {gpus} GPU(s)")
        try:
            sample = session.sample(timeout)
        except NodeError as exc:
            return walk.fail("nvml", exc)
        except FactoryError as exc:
            return walk.fail("nvml", NodeError(walk.node, "driver", exc.message, exc.hint))
        lost = [g.index for g in sample.gpus if g.uuid is None]
        if lost:
            walk.add("nvml", "warn", f"GPU(s) {lost} not answering (lost?)", lost_gpu_fix(spec, lost))
        else:
            walk.add("nvml", "ok", f"sampled {len(sample.gpus)} GPU(s)")
        return Diagnosis(walk.node, walk.steps)
    finally:
        session.close()


def _no_gpu(node: str, backend: object, error: object) -> NodeError:
    """Why the agent's hello counted no GPU: the driver's own words if it said them (as `gpus` shows them)."""
    said = error.get("message") if isinstance(error, dict) else None
    problem = f"backend {backend}: {said}" if said else f"backend {backend} sees no GPU"
    return NodeError(node, "driver", problem, DRIVER_HINT)
