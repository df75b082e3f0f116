"""The one error of an SSH connection that died under a command or an agent, worded by how it died.

Kept apart from ssh.py (which opens connections and runs commands on them) so that every module that meets a lost
connection (ssh.py, ssh_node.py, smi.py, the fan-out) says it alike. A connection the node's side closed or reset is
`connection lost ...`; one that went silent (the link went down: packets vanish, nothing is closed, and TCP alone
would retransmit for many minutes) is found by the liveness watch (ssh_watch.py) or a bounded round trip, and its
message says the link stopped answering, so its hint (hints.py) is about the network path rather than sshd.
"""

from __future__ import annotations

from factoryctl.errors import NodeError
from factoryctl.transport.hints import LOST_HINT, SILENT_LINK, SILENT_LINK_HINT, THROUGH_JUMP, lost_jump_hint
from factoryctl.transport.host_limits import local_limit_error
from factoryctl.transport.ssh_config import SshTarget


def lost_connection(
    node: str,
    what: str,
    cause: BaseException | None = None,
    jump: SshTarget | None = None,
    silent_s: float | None = None,
) -> NodeError:
    """The error of a connection that died under a command or an agent (`refused`: the node's side went away).

    Unless `cause` is this machine's limit (no file descriptor left for the pipe paramiko makes to wait on a
    channel, no thread): that is the `local` error, not the node's fault. A node reached through `jump` (its
    ProxyJump) may have been lost with its jump host: both are named, the jump hosts outermost first. `silent_s`:
    the connection was given up on because nothing came back on it for that long (a link that went down).
    """
    local = None if cause is None else local_limit_error(node, cause)
    if local is not None:
        return local
    silent = "" if silent_s is None else f": {SILENT_LINK} (no answer within {silent_s:g} s)"
    if jump is None:
        return NodeError(
            node, "refused", f"connection lost {what}{silent}", LOST_HINT if not silent else SILENT_LINK_HINT
        )
    hops: list[str] = []
    hop: SshTarget | None = jump
    while hop is not None:
        hops.insert(0, hop.label)
        hop = hop.jump
    plural = "s" * (len(hops) > 1)
    said = f"connection lost {what} ({THROUGH_JUMP}{plural} {', '.join(hops)}){silent}"
    return NodeError(node, "refused", said, lost_jump_hint(hops))
