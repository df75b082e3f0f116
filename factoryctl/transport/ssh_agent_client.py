"""ssh-agent, asked within a deadline: an agent that accepts and never answers must not hold a connection forever.

paramiko's `Agent()` connects to SSH_AUTH_SOCK and waits, without a timeout, for the list of keys, and an agent key
waits the same way for its signature: a hung agent (or a forwarded socket whose far end went away) held `exec`,
`nodes` and every other command forever, past --timeout and ssh.connect_timeout_s. An agent that lists its keys and
then waits for a confirmation or a PIN nobody gives (`ssh-add -c`, a smartcard) held authentication until paramiko's
own timeout, which was then reported as the server refusing the key. Here the agent's socket has the connection's
authentication timeout, and whether a signature is still awaited is kept, so that each is said for what it is. An
SSH_AUTH_SOCK that names no socket is said too (in the `auth` error), not skipped without a word.

The timeout bounds each answer, not each read: paramiko reads an answer with as many `recv` calls as it takes, so an
agent sending one byte every few seconds held a command for hours under a per-read timeout. Each request starts a
deadline that every read of its answer shares. paramiko also reads an answer of the length the agent announces (up
to 4 GiB) in one growing buffer: an agent announcing 256 MiB took minutes and half a gigabyte. An answer longer than
OpenSSH's own limit (AGENT_MAX_LEN, 256 KiB) is refused before any of it is read.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from factoryctl.transport.host_limits import is_file_exhaustion

if TYPE_CHECKING:
    import paramiko

#: The agent protocol's message asking for a signature (SSH_AGENTC_SIGN_REQUEST), after its 4-byte length.
_SIGN_REQUEST = b"\x0d"
#: The longest answer an agent may give, as OpenSSH's client and agent allow (AGENT_MAX_LEN).
MAX_ANSWER_BYTES = 256 * 1024
#: How the agent's socket says an answer was announced longer than `MAX_ANSWER_BYTES`.
TOO_LONG = f"sent an answer longer than {MAX_ANSWER_BYTES // 1024} KiB, which no ssh-agent sends"


class AgentSocket:
    """The agent's socket as paramiko's agent client uses it (`send`, `recv`, `close`), every answer bounded.

    Each request (`send`) gives its answer `timeout` seconds in all (module doc). `signing` is true from a sign
    request until the agent's whole answer came: the signature is still awaited. Once an answer failed (too late,
    too long) the socket is out of step with the agent, so every later use fails the same way.
    """

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._left = 4  # bytes of the current answer not yet read: its length, then its body
        self._header = b""
        self.signing = False
        self.timed_out = False
        self.too_long = False

    def send(self, data: bytes) -> int:
        """Send one whole message (paramiko sends each with one call); its answer's deadline starts now."""
        self._check()
        self.signing = data[4:5] == _SIGN_REQUEST
        self._deadline = time.monotonic() + self._timeout
        self._left, self._header = 4, b""
        try:
            self._sock.settimeout(self._timeout)
            self._sock.sendall(data)
        except OSError as exc:
            raise self._failed(exc) from exc
        return len(data)

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes, before the answer's deadline; an answer announced longer than allowed is refused."""
        self._check()
        if size > MAX_ANSWER_BYTES:
            self.too_long = True
            self._check()
        try:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("ssh-agent's answer is late")
            self._sock.settimeout(left)
            data = self._sock.recv(size)
        except OSError as exc:
            raise self._failed(exc) from exc
        self._count(data)
        return data

    def _count(self, data: bytes) -> None:
        """Follow the answer's framing in `data`: once all of it came, the signature (if asked) is no longer awaited."""
        if self._left == 0 or not data:
            return
        if len(self._header) < 4:
            taken = data[: 4 - len(self._header)]
            self._header += taken
            data = data[len(taken) :]
            if len(self._header) == 4:
                self._left = int.from_bytes(self._header, "big")
        if len(self._header) == 4:
            self._left = max(0, self._left - len(data))
            if self._left == 0:
                self.signing = False

    def _check(self) -> None:
        """Raise what the agent's last failure was, if there was one: the socket is then out of step."""
        import paramiko

        if self.too_long:
            raise paramiko.SSHException(f"ssh-agent {TOO_LONG}")
        if self.timed_out:
            raise paramiko.SSHException("ssh-agent did not answer")

    def _failed(self, exc: OSError) -> Exception:
        """The SSHException paramiko's code handles for the agent's socket failing; its transport thread handles no other."""
        import paramiko

        if is_file_exhaustion(exc):
            return exc
        self.timed_out = isinstance(exc, TimeoutError)
        return paramiko.SSHException("ssh-agent did not answer" if self.timed_out else f"lost ssh-agent: {exc}")

    def close(self) -> None:
        """Close it; a thread still waiting on it (paramiko's, for a signature) is woken by the shutdown."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()


@dataclass
class AgentKeys:
    """The agent's keys for one connection, or why there are none (`note`, for the `auth` error)."""

    path: str = ""
    keys: tuple[paramiko.PKey, ...] = ()
    note: str | None = None
    timeout: float = 0.0
    _socket: AgentSocket | None = field(default=None, repr=False)

    def signing(self) -> bool:
        """Whether a signature was asked of the agent and not answered (see `AgentSocket`)."""
        return self._socket is not None and self._socket.signing

    def too_long(self) -> bool:
        """Whether the agent's last answer was announced longer than any agent's (`TOO_LONG`)."""
        return self._socket is not None and self._socket.too_long

    def close(self) -> None:
        """Close the agent's socket (if it was reached)."""
        if self._socket is not None:
            self._socket.close()


def agent_keys(timeout: float) -> AgentKeys:
    """The keys of the ssh-agent SSH_AUTH_SOCK names, asked within `timeout`; none, with a note, if it cannot say.

    The socket keeps `timeout` for the signatures asked later (through the keys), until `close`.
    """
    path = os.environ.get("SSH_AUTH_SOCK", "")
    if not path:
        return AgentKeys()
    named = f"ssh-agent (SSH_AUTH_SOCK={path})"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as exc:
        sock.close()
        if is_file_exhaustion(exc):
            raise
        return AgentKeys(path, note=f"{named}: {_connect_failure(exc, timeout)}")
    return _listed(path, named, AgentSocket(sock, timeout), timeout)


def _listed(path: str, named: str, agent_socket: AgentSocket, timeout: float) -> AgentKeys:
    """The keys the agent on `agent_socket` lists (paramiko's client reads them); the socket closed if it cannot."""
    import paramiko

    client = paramiko.agent.AgentSSH()
    connect = getattr(client, "_connect", None)  # private, not in the stubs: a later paramiko may lack it
    note = None
    if not callable(connect):
        note = f"{named} not used: this paramiko has no agent client factoryctl knows"
    else:
        try:
            connect(agent_socket)
        except Exception as exc:  # the agent's answer is anything its socket sent: whatever it raises, it is said
            if is_file_exhaustion(exc):
                agent_socket.close()
                raise
            note = f"{named}: {exc}"
            if agent_socket.timed_out:
                note = f"{named} did not answer within {timeout:g} s"
            elif agent_socket.too_long:
                note = f"{named} {TOO_LONG}: its keys are not used"
    if note is not None:
        agent_socket.close()
        return AgentKeys(path, note=note)
    return AgentKeys(path, client.get_keys(), None, timeout, agent_socket)


def _connect_failure(exc: OSError, timeout: float) -> str:
    """Why the agent's socket could not be reached, as a few words."""
    if isinstance(exc, FileNotFoundError):
        return "no such socket"
    if isinstance(exc, ConnectionRefusedError):
        return "nothing listens on that socket (the agent exited)"
    if isinstance(exc, TimeoutError):
        return f"did not accept the connection within {timeout:g} s"
    return f"cannot connect: {exc.strerror or exc}"
