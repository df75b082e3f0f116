"""Opening an SSH connection step by step: TCP, the SSH handshake, the host-key check, authentication.

Each step is its own bounded function with its own classified failure, because `factoryctl nodes check` runs them
one at a time to say which one fails; `SshConnection.open` (ssh.py) runs them in order. Host keys are checked
against the configured known_hosts before any credential is sent, and nothing is ever added to it here. As OpenSSH
does, the handshake asks first for the key types known_hosts records for the host: paramiko's own order (ed25519
first) would otherwise fetch a key of a type never recorded from a host whose ECDSA or RSA key is.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError
from factoryctl.transport.base import MAX_OUTPUT_BYTES
from factoryctl.transport.hints import (
    CHANGED_KEY,
    CONNECT_TIMEOUT_HINT,
    CONNECT_TIMEOUT_SETTING,
    DNS_HINT,
    DROPPED,
    DROPPED_HINT,
    NETWORK_HINT,
    NO_ANSWER,
    NO_BANNER,
    NOT_SSH,
    NOT_SSH_HINT,
    OTHER_TYPES,
    OTHER_TYPES_WARNING,
    REFUSED,
    REFUSED_HINT,
    REVOKED_KEY,
    SILENT_HINT,
    changed_key_message,
    host_key_hint,
)
from factoryctl.transport.host_limits import local_limit_error
from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts, UnreadableKnownHosts, fingerprint, key_type_of
from factoryctl.transport.polling import readable
from factoryctl.transport.ssh_agent_client import TOO_LONG, agent_keys
from factoryctl.transport.ssh_auth_errors import auth_refused, auth_unanswered
from factoryctl.transport.ssh_config import SshTarget
from factoryctl.transport.ssh_identities import (
    AGENT_HINT,
    AGENT_SIGN_HINT,
    AGENT_UNSIGNED,
    offered_keys,
)

if TYPE_CHECKING:
    import paramiko

_log = logging.getLogger("factoryctl.transport")

#: How a handshake that timed out after the banner is said (`start_transport`): banner's hint, a hung sshd's.
UNFINISHED_HANDSHAKE = "did not finish the SSH handshake"

#: The key exchange, after the banner, is bounded by this many banner timeouts (ssh.connect_timeout_s): it costs CPU
#: on both ends (sshd forks and signs for each connection; a controller starting every node's link at once verifies
#: them all: 256 connections took 4.2 s on 2 cores, benchmarks/README.md), so a bound as tight as TCP's would fail
#: healthy nodes of a loaded start. paramiko's own handshake timer (one banner timeout) covers only the wait for the
#: server's first KEXINIT: it is cancelled once a packet is read after it.
HANDSHAKE_TIMEOUTS = 2

#: How much of what a peer said as it closed the connection during the handshake (its DISCONNECT) is quoted.
_FAREWELL_CHARS = 200

#: Read from here by `nodes trust` (trust.py, nodes_trust.py); the table of hints (hints.py) is their home.
__all__ = ["CHANGED_KEY", "OTHER_TYPES", "OTHER_TYPES_WARNING", "REVOKED_KEY", "host_key_hint"]


@dataclass(frozen=True)
class SshOptions:
    """Timeouts and places; every network step is bounded."""

    connect_timeout_s: float = 10.0
    banner_timeout_s: float = 10.0
    auth_timeout_s: float = 10.0
    channel_timeout_s: float = 10.0
    #: factory.yaml's `ssh.keepalive_s`: paramiko's keepalive interval (whole seconds) and the liveness watch's, whose
    #: checks may go unanswered this long, or connect_timeout_s if longer (`SshConnection.answer_bound`).
    keepalive_s: float = 15.0
    #: Output kept per stream of a command; more is read and dropped, so `cat /dev/zero` cannot exhaust memory.
    max_output_bytes: int = MAX_OUTPUT_BYTES
    #: Agent cache on the node (factory.yaml's `ssh.remote_cache_dir`), relative to the login directory (SFTP and
    #: exec both start there); `$FACTORYCTL_REMOTE_CACHE` overrides it.
    remote_cache: str = ".cache/factoryctl"
    #: ~/.ssh/config to read; None means the user's.
    ssh_config: Path | None = None


@dataclass(frozen=True)
class ServerKey:
    """A server's host key as presented during the handshake, and what known_hosts says about it."""

    host: str
    port: int
    key_type: str
    blob: bytes
    status: HostKeyStatus
    #: Fingerprints recorded for the host with this key's type (the old key's for a changed one).
    recorded: tuple[str, ...] = ()
    #: Other key types recorded for the host (an unknown key's host may still be known by another key).
    other_types: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        """`SHA256:...` as OpenSSH prints it."""
        return fingerprint(self.blob)


def tcp_socket(node: str, target: SshTarget, timeout: float) -> socket.socket:
    """A connected TCP socket with TCP_NODELAY; failures classified as dns, refused or timeout."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise NodeError(node, "dns", f"cannot resolve {target.host}: {exc.strerror}", DNS_HINT) from exc
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    where = target.address
    if isinstance(last, (socket.timeout, TimeoutError)):  # bounded by ssh.connect_timeout_s, which the message names
        message = f"{NO_ANSWER} {where} within {timeout:g} s {CONNECT_TIMEOUT_SETTING}"
        raise NodeError(node, "timeout", message, CONNECT_TIMEOUT_HINT) from last
    if isinstance(last, ConnectionRefusedError):
        raise NodeError(node, "refused", f"{where} {REFUSED}", REFUSED_HINT) from last
    if isinstance(last, ConnectionResetError):  # accepted, then reset before connect() returned: dropped, as below
        raise _dropped(node, target, "reset") from last
    reason = getattr(last, "strerror", None) or str(last)
    raise NodeError(node, "refused", f"cannot connect to {where}: {reason}", NETWORK_HINT) from last


def _quiet_paramiko() -> None:
    """Silence paramiko's traceback for every failed handshake; each failure is already a classified NodeError.

    Without a handler, logging's last resort would print those tracebacks on stderr. They stay available with
    `--debug` / FACTORYCTL_DEBUG=1, or when the application set the paramiko logger's level itself.
    """
    log = logging.getLogger("paramiko")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
    if log.level == logging.NOTSET and os.environ.get("FACTORYCTL_DEBUG") != "1" and "--debug" not in sys.argv:
        log.setLevel(logging.CRITICAL)


def _await_banner(node: str, target: SshTarget, sock: socket.socket, timeout: float) -> None:
    """Wait, without polling, until the server sends something (its SSH banner) or `timeout` passes.

    paramiko waits for the banner on a thread of its own that wakes every 0.1 s: hundreds of nodes that accept the
    connection and never speak (a hung sshd, a middlebox) then cost hundreds of such threads, which took a
    controller's cores and starved the nodes that do answer. A blocking poll costs nothing while it waits.
    """
    if not readable([sock], timeout):  # poll, not select: a 2,000-node fleet has descriptors past FD_SETSIZE
        sock.close()
        where = target.address
        raise NodeError(
            node,
            "banner",
            f"{where} {NO_BANNER} within {timeout:g} s (not an SSH server, or one that is hung or overloaded)",
            SILENT_HINT,
        )
    _refuse_if_dropped(node, target, sock)


def _refuse_if_dropped(node: str, target: SshTarget, sock: socket.socket) -> None:
    """Raise `refused` (a lost connection, as docs/ssh.md classifies it) if the peer closed or reset before its banner.

    Readable also means closed; a peek (which cannot block: the socket is readable) tells that apart from a greeting,
    so the reset is named instead of paramiko's empty "Error reading SSH protocol banner".
    """
    try:
        peeked = sock.recv(1, socket.MSG_PEEK)
    except OSError as exc:
        what = "reset" if isinstance(exc, ConnectionResetError) else f"broke ({exc.strerror or exc})"
    else:
        if peeked:
            return
        what = "closed"
    sock.close()
    raise _dropped(node, target, what)


def _dropped(node: str, target: SshTarget, what: str) -> NodeError:
    return NodeError(node, "refused", f"{target.address} {what} {DROPPED}", DROPPED_HINT)


def start_transport(
    node: str,
    target: SshTarget,
    sock: socket.socket | paramiko.Channel,
    options: SshOptions,
    known: KnownHosts | None = None,
) -> paramiko.Transport:
    """The SSH handshake on `sock`, bounded by the banner timeout; a peer that does not speak SSH is `banner`.

    `known` is the target's known_hosts as read for this connection (`read_known_hosts`), which orders the host-key
    types asked for; the host-key check after the handshake is given the same one, so the file is read once.
    """
    import paramiko

    _quiet_paramiko()
    if isinstance(sock, socket.socket):
        _await_banner(node, target, sock, options.banner_timeout_s)
    transport = paramiko.Transport(sock)
    transport.banner_timeout = options.banner_timeout_s
    transport.handshake_timeout = options.banner_timeout_s
    transport.auth_timeout = options.auth_timeout_s
    transport.channel_timeout = options.channel_timeout_s
    prefer_aes_gcm(transport)
    if known is not None:
        prefer_recorded_key_types(transport, known, target)
    farewell = _record_disconnect(transport)
    done = threading.Event()
    try:
        transport.start_client(event=done)
    except paramiko.SSHException as exc:  # pragma: no cover - start() itself rarely fails
        transport.close()
        raise NodeError(node, "banner", f"SSH negotiation with {target.label} failed: {exc}") from exc
    finished = done.wait(options.banner_timeout_s * HANDSHAKE_TIMEOUTS)
    error = transport.get_exception()  # once: paramiko clears it as it is read
    if not finished or not transport.is_active() or error is not None:
        failure = _unfinished(node, target, transport, options, finished, error, farewell)
        raise failure from error
    transport.set_keepalive(max(1, int(options.keepalive_s)))
    return transport


def _unfinished(
    node: str,
    target: SshTarget,
    transport: paramiko.Transport,
    options: SshOptions,
    finished: bool,
    error: BaseException | None,
    farewell: list[str],
) -> NodeError:
    """Why the handshake did not finish (`finished`: paramiko's thread ended it), the transport closed.

    paramiko's thread ends without an error when the peer sends DISCONNECT (its reason is in `farewell`): that peer
    closed the connection, as one hanging up does, and did not keep the handshake waiting.
    """
    timed_out = transport.packetizer.handshake_timed_out()  # paramiko's EOFError says so no more than a hang-up
    transport.close()
    local = local_limit_error(node, error) if error is not None else None
    if local is not None:  # this machine ran out of threads or files: not the node's fault
        return local
    if (error is None and not finished) or (timed_out and isinstance(error, EOFError)):
        within = f"{options.banner_timeout_s:g} s"  # paramiko's timer: no KEXINIT after the banner
        if error is None:  # ours: the key exchange began and did not end
            within = f"{options.banner_timeout_s * HANDSHAKE_TIMEOUTS:g} s, twice ssh.connect_timeout_s"
        message = f"{target.address} {UNFINISHED_HANDSHAKE} within {within} (its sshd may be hung or overloaded)"
        return NodeError(node, "banner", message, SILENT_HINT)
    text = _handshake_failure(error, farewell)
    return NodeError(node, "banner", f"{target.address} {NOT_SSH} ({text})", NOT_SSH_HINT)


def prefer_aes_gcm(transport: paramiko.Transport) -> None:
    """Offer AES-GCM first, keeping every other cipher after it in paramiko's order (nothing removed).

    One AEAD call per packet instead of AES-CTR plus a separate HMAC-SHA2-256 about halves the decrypt and MAC cost
    per packet (benchmarks/README.md, Session 10); a server without GCM still negotiates CTR as before.
    """
    security = transport.get_security_options()
    gcm = tuple(c for c in security.ciphers if c.endswith("-gcm@openssh.com"))
    security.ciphers = gcm + tuple(c for c in security.ciphers if c not in gcm)


def read_known_hosts(target: SshTarget) -> KnownHosts | None:
    """The target's known_hosts, read once for a connection; None when it cannot be read.

    Then the handshake asks for paramiko's key types in its own order, and the host-key check reads the file again
    and reports why it cannot.
    """
    try:
        return KnownHosts(target.known_hosts)
    except (OSError, UnreadableKnownHosts):
        return None


def prefer_recorded_key_types(transport: paramiko.Transport, known: KnownHosts, target: SshTarget) -> None:
    """Ask first for the host-key types `known` records for the target, as OpenSSH does (nothing removed).

    Within each group paramiko's order stays; `rsa-sha2-512`/`-256` count as the recorded `ssh-rsa`.
    """
    recorded = known.recorded_types(target.host, target.port)
    if not recorded:
        return
    security = transport.get_security_options()
    first = tuple(a for a in security.key_types if key_type_of(a) in recorded)
    security.key_types = first + tuple(a for a in security.key_types if a not in first)


def _handshake_failure(error: BaseException | None, farewell: list[str]) -> str:
    """Why the handshake failed, never empty: paramiko's EOFError for a peer that hung up says nothing by itself.

    paramiko raises the same EOFError when its handshake timeout passed: `start_transport` tells that one apart. No
    error at all is a peer that sent DISCONNECT: what it said (`farewell`) is quoted, cut to `_FAREWELL_CHARS`.
    """
    text = str(error or "").strip()
    if error is None or isinstance(error, EOFError) or not text:
        said = " ".join(farewell).strip()
        if len(said) > _FAREWELL_CHARS:
            said = f"{said[:_FAREWELL_CHARS]}..."
        return "it closed the connection during the handshake" + (f", saying: {said}" if said else "")
    return text


def server_key(
    transport: paramiko.Transport, target: SshTarget, known: KnownHosts | None = None, node: str | None = None
) -> ServerKey:
    """The key the server presented, classified against the target's known_hosts (`known`, if already read).

    A known_hosts that cannot be read (permissions, a directory, a FIFO: never waited on) is `node`'s `host_key`
    error (exit 4) saying why; without `node` the error names the target's host.
    """
    key = transport.get_remote_server_key()
    if known is None:
        try:
            known = KnownHosts(target.known_hosts)
        except UnreadableKnownHosts as exc:
            raise NodeError(node or target.host, "host_key", exc.message, exc.hint) from None
    blob, key_type = key.asbytes(), key.get_name()
    status = known.check(target.host, target.port, key_type, blob)
    return ServerKey(
        target.host,
        target.port,
        key_type,
        blob,
        status,
        tuple(known.recorded_fingerprints(target.host, target.port, key_type)),
        tuple(t for t in known.recorded_types(target.host, target.port) if t != key_type_of(key_type)),
    )


def verify_host_key(
    node: str, transport: paramiko.Transport, target: SshTarget, known: KnownHosts | None = None
) -> ServerKey:
    """Refuse (NodeError host_key, exit 4) unless the server key is recorded for `[host]:port` and not revoked."""
    try:
        found = server_key(transport, target, known, node)
    except NodeError:
        transport.close()
        raise
    where = f"[{target.host}]:{target.port}"
    if found.status is HostKeyStatus.known:
        return found
    transport.close()
    if found.status is HostKeyStatus.revoked:
        message = f"{where} {REVOKED_KEY} {found.key_type} {found.fingerprint}"
    elif found.status is HostKeyStatus.changed:
        message = changed_key_message(where, found.key_type, found.fingerprint, found.recorded)
    else:
        message = f"unknown host key for {where}: {found.key_type} {found.fingerprint} (not in {target.known_hosts})"
        if found.other_types:
            message += f"; {OTHER_TYPES} ({', '.join(found.other_types)})"
    raise NodeError(node, "host_key", message, host_key_hint(node, message, target.known_hosts))


def authenticate(node: str, transport: paramiko.Transport, target: SshTarget) -> None:
    """Try the configured identity files, then ssh-agent keys; never every key on disk (see ssh_identities.py).

    A key file that cannot be used (one that needs a passphrase, is not a key, or that others can read) is offered
    through ssh-agent's copy of its public key, if the agent has one, else skipped, as ssh skips it when it cannot
    ask. With `IdentitiesOnly yes` the agent's other keys are not offered. Why each file was skipped is logged at
    debug level and, when no key is accepted, said in the `auth` error. Once the server closed the connection (sshd
    does past its MaxAuthTries, "Too many authentication failures") no further key is offered: the error names only
    the keys it was sent. The agent is asked within the authentication timeout (ssh_agent_client.py): one that does
    not answer is said and its keys left out; one that does not sign ends authentication with that said.
    """
    timeout = transport.auth_timeout or SshOptions.auth_timeout_s
    agent = agent_keys(timeout)  # closed after use, so reconnects leak no sockets
    farewell = _record_disconnect(transport)
    tried: list[str] = []
    unsigned = None
    try:
        offers = offered_keys(node, target, agent.keys)
        for label, key in offers.keys:
            if not transport.is_active():  # the server hung up: nothing more reaches it
                break
            answer = _try_key(transport, target.user, key)
            if answer:
                return
            if agent.signing():  # the agent still holds the signature: the server never saw the key
                unsigned = label
                break
            if answer is None:  # no answer at all: the next key would wait as long, and it refused nothing
                transport.close()
                raise auth_unanswered(node, target, timeout)
            tried.append(label)
    finally:
        agent.close()  # wakes paramiko's thread if it still waits for that signature
    closed = not transport.is_active()
    transport.close()
    if unsigned is not None and agent.too_long():  # a broken agent, not one awaiting a confirmation
        message = f"ssh-agent (SSH_AUTH_SOCK={agent.path}) {TOO_LONG}, when asked to sign for {unsigned}"
        raise NodeError(node, "auth", message, AGENT_HINT)
    if unsigned is not None:
        raise NodeError(node, "auth", f"{AGENT_UNSIGNED} within {timeout:g} s for {unsigned}", AGENT_SIGN_HINT)
    raise auth_refused(node, target, offers, agent.note, tried, farewell if closed else None)


def _record_disconnect(transport: paramiko.Transport) -> list[str]:
    """A list that gets the reason of the server's DISCONNECT message, if one comes; paramiko only logs it.

    sshd sends "Too many authentication failures" when it drops a client past its MaxAuthTries.
    """
    said: list[str] = []
    parse = getattr(transport, "_parse_disconnect", None)  # private, not in the stubs: a later paramiko may lack it
    if not callable(parse):
        return said  # the reason is then unknown; the error still says the connection was closed

    def recorded(message: paramiko.Message) -> None:
        position = message.packet.tell()
        try:
            message.get_int()
            said.append(message.get_text())
        except Exception:  # a garbled message: paramiko's own parse says what it can, as before
            pass
        message.packet.seek(position)
        parse(message)

    setattr(transport, "_parse_disconnect", recorded)  # noqa: B010
    return said


#: What paramiko's AuthenticationException says when no answer came within `Transport.auth_timeout` (it has no class
#: of its own); a refusal is "Authentication failed." or BadAuthenticationType.
_AUTH_TIMEOUT = "Authentication timeout."


def _try_key(transport: paramiko.Transport, user: str, key: paramiko.PKey) -> bool | None:
    """Offer `key`: True if accepted, False if refused (or the connection closed meanwhile: see `authenticate`).

    None when no answer came within the authentication timeout, the connection still open.
    """
    import paramiko

    try:
        transport.auth_publickey(user, key)
    except paramiko.SSHException as exc:  # AuthenticationException too: refused, timed out, the transport shut down,
        # or ssh-agent did not sign (its socket's timeout: ssh_agent_client.py), which the caller tells first
        if str(exc) == _AUTH_TIMEOUT and transport.is_active():
            return None
        return False
    return transport.is_authenticated()
