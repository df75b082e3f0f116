"""What keeps an idle SSH connection cheap: paramiko's transport thread wakes once a second, not ten times.

paramiko reads its socket with a 0.1 s timeout (`Transport._active_check_timeout`) so that its thread notices a
`close()`, sends keepalives when the line was quiet and starts a rekey this side asked for. Every connection's thread
so woke ten times a second to raise and catch `socket.timeout`: at 64 nodes streaming at 1 Hz that was most of the
controller's transport CPU. Once a connection is authenticated the timeout is raised to `IDLE_WAKE_S`, and what
depended on the short one is kept prompt another way:

* close: `close_transport` shuts the socket down before paramiko closes it, which wakes the thread at once (a read
  under way ends with EOF) and tells the peer at once; paramiko's own close only flagged the thread, which noticed at
  its next wake, and the kernel held the connection open until then.
* keepalive: paramiko sends one when a wake finds the line quiet for the interval (15 s by default), so it comes at
  most `IDLE_WAKE_S` late, never missed.
* rekey: one the peer starts arrives as a packet and wakes the thread; one this side starts (after 2**29 bytes or
  packets, which a 1 Hz stream takes days to reach) begins at the next packet or wake.
* dead peer: noticed by the liveness watch (`SshConnection.watch`), a round trip with its own timeout, never by a wake.

The handshake keeps paramiko's 0.1 s: its timeouts (banner, handshake) are checked at wakes.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

#: How often an authenticated connection's transport thread wakes when nothing arrives (paramiko's is 0.1 s).
IDLE_WAKE_S = 1.0


def settle(transport: paramiko.Transport) -> None:
    """After authentication: let the transport thread sleep up to `IDLE_WAKE_S` in its reads (see the module doc)."""
    transport.sock.settimeout(IDLE_WAKE_S)


def close_transport(transport: paramiko.Transport) -> None:
    """Close the transport and its channels, waking its thread and telling the peer at once (not at the next wake).

    A jump host's tunnel (a channel, not a socket) needs no shutdown: paramiko's close of it wakes its reader.
    """
    sock = transport.sock
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):  # already closed or reset: nothing to wake
            sock.shutdown(socket.SHUT_RDWR)
    transport.close()
