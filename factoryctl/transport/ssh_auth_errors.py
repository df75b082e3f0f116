"""How an SSH authentication that got no key accepted is said: refused (`auth`), or never answered (`timeout`).

Kept apart from ssh_handshake.py (which runs the connection's steps) because the wording is a table of its own:
which keys were tried, skipped or left out, whether the server closed the connection first (sshd's MaxAuthTries),
and a silent server, which refused nothing, told from one that refused every key.
"""

from __future__ import annotations

from factoryctl.errors import NodeError
from factoryctl.transport.hints import AUTH_UNANSWERED, AUTH_UNANSWERED_HINT, CONNECT_TIMEOUT_SETTING, NO_ANSWER
from factoryctl.transport.ssh_config import SshTarget
from factoryctl.transport.ssh_identities import NO_KEY_TO_OFFER, Offers, auth_hint


def auth_unanswered(node: str, target: SshTarget, timeout: float) -> NodeError:
    """The `timeout` error of a server that did not answer a key within the authentication timeout.

    The link went silent (or sshd hangs in its user lookup or PAM): it refused nothing, so this is no `auth` error.
    Worded as the TCP connect timeout is ("no answer from"), with a hint of its own (hints.py `AUTH_UNANSWERED`),
    which a message read back from a controller's store gets too.
    """
    message = f"{NO_ANSWER} {target.label} {AUTH_UNANSWERED} {timeout:g} s {CONNECT_TIMEOUT_SETTING}"
    return NodeError(node, "timeout", message, AUTH_UNANSWERED_HINT)


def auth_refused(
    node: str, target: SshTarget, offers: Offers, agent_note: str | None, tried: list[str], farewell: list[str] | None
) -> NodeError:
    """The `auth` error once no key was accepted; `farewell` is the server's DISCONNECT reasons if it closed first."""
    notes = [s.reason for s in offers.skipped] + ([agent_note] if agent_note else [])
    if offers.left_out:
        notes.append(f"IdentitiesOnly yes: {offers.left_out} other ssh-agent key(s) not offered")
    if not tried and not notes:
        notes.append("no identity file and no ssh-agent keys")
    detail = "; ".join(notes + ([f"tried {', '.join(tried)}"] if tried else []))
    too_many = farewell is not None and any("too many" in reason.lower() for reason in farewell)
    if farewell is not None:
        detail += closed_after(len(tried), len(offers.keys) - len(tried), farewell[0] if farewell else "")
    hint = auth_hint(offers.skipped, offers.left_out, too_many, agent_note is not None)
    if not tried:  # nothing reached the server: it refused nothing
        return NodeError(node, "auth", f"{NO_KEY_TO_OFFER} {target.label} ({detail})", hint)
    return NodeError(node, "auth", f"{target.label} refused authentication ({detail})", hint)


def closed_after(offered: int, left: int, reason: str) -> str:
    """How the server ended authentication: it closed the connection after `offered` keys, `left` not offered."""
    why = f": {reason.strip()}" if reason.strip() else ""
    if "too many" in why.lower():
        why += " (sshd's MaxAuthTries)"
    rest = f"; {left} more key(s) not offered" if left else ""
    return f"; then it closed the connection after {offered} refused key(s){why}{rest}"
