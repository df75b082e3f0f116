"""The agent upload's one deadline, and how a link that failed under it is said (not as the node's disk).

Each SFTP step of `agent_cache.ship_agent` waits on its channel's timeout alone, so a link that went silent mid-upload
waited that timeout more than once (31 s for `gpus --timeout 15`), and the socket's timeout, whose text is empty,
was said `cannot upload the agent to ...: ` with the hint to check free space. Kept apart from agent_cache.py, which
decides what may be reused or written in the cache: this module only bounds and names the link's failures.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError
from factoryctl.transport.hints import UPLOAD_TIMEOUT_HINT, UPLOAD_UNFINISHED
from factoryctl.transport.ssh import SshConnection

if TYPE_CHECKING:
    import paramiko

#: How long the round trip that tells a silent link from a slow upload may take (as for an agent's missing hello).
ROUND_TRIP_S = 2.0
#: How the lost connection's sentence names the step (`connection lost while uploading the agent`).
UPLOADING = "while uploading the agent"


class UploadDeadline:
    """Closes the SFTP client `timeout` seconds after entry, ending the step under way; `expired` says it did."""

    def __init__(self, sftp: paramiko.SFTPClient, timeout: float) -> None:
        self.expired = threading.Event()
        self._sftp = sftp
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired.set()
        self._sftp.close()

    def __enter__(self) -> UploadDeadline:
        self._timer.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._timer.cancel()


def link_failure(connection: SshConnection, exc: BaseException, timeout: float, expired: bool) -> NodeError | None:
    """The error of an upload step that failed by the link (`exc`), or None when it was the node's file system.

    The link's: the deadline passed (`expired`), a socket timeout, a connection error, paramiko's "Server connection
    dropped" (SSHException, EOFError), or a transport that is down. One round trip then tells a silent link (said as
    the liveness watch says it, `connection lost while uploading the agent: the link to the node stopped answering`,
    exit 4) from one that answers, whose upload was just too slow for --timeout (`timeout`, exit 124).
    """
    import paramiko

    linked = (TimeoutError, ConnectionError, EOFError, paramiko.SSHException)
    if not (expired or isinstance(exc, linked) or not connection.transport.is_active()):
        return None
    if connection.answers(ROUND_TRIP_S):
        return NodeError(
            connection.node,
            "timeout",
            f"{UPLOAD_UNFINISHED} {timeout:g} s (--timeout)",
            UPLOAD_TIMEOUT_HINT,
        )
    return connection.lost(UPLOADING, exc)
