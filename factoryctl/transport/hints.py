"""The one table of what to do about a node's failure: its kind, and the sub-case its message names.

A node's failure reaches the user three ways: from the transport as it happens (`nodes list`, `gpus`, `exec`,
`power`), from the store a controller wrote (`telemetry/latest.py`: the store keeps kind and message, not the
hint), and from `nodes check`. All three take their hint from `node_error_hint`, so one failure gets one hint
whichever way it is read. The sub-cases are told apart by the sentence the transport writes; the markers those
sentences are built with live here, beside the hints that read them back.
"""

from __future__ import annotations

import re
from pathlib import Path

from factoryctl.errors import NodeError
from factoryctl.model.folding import fold_indexes
from factoryctl.transport.known_hosts import UNREADABLE, unreadable_hint
from factoryctl.transport.ssh_identities import AGENT_SIGN_HINT, AGENT_UNSIGNED, SkippedKey, auth_hint

#: How `verify_host_key`'s messages start (after `[host]:port`) for a changed and a revoked key.
CHANGED_KEY = "HOST KEY CHANGED"
REVOKED_KEY = "presented a REVOKED host key"
#: How an unknown key's message goes on when known_hosts records keys of other types for the host.
OTHER_TYPES = "keys of other types are recorded for it"
#: OpenSSH's warning for such a key: a man in the middle may offer only a type that was never recorded.
OTHER_TYPES_WARNING = (
    "keys of other types are already recorded for this host: if the node did not drop them, someone may be "
    "intercepting the connection"
)
#: How a TCP connect that timed out begins (`tcp_socket`): bounded by ssh.connect_timeout_s, never by --timeout.
NO_ANSWER = "no answer from"
#: What the TCP-timeout message ends with, naming the setting that bounds it.
CONNECT_TIMEOUT_SETTING = "(ssh.connect_timeout_s)"
#: How a server that answered no key offered goes on after NO_ANSWER and its target (ssh_auth_errors.py `auth_unanswered`):
#: `no answer from root@10.0.0.7:22 to authentication within 10 s (ssh.connect_timeout_s)`.
AUTH_UNANSWERED = "to authentication within"
#: How an agent upload the link answered under, but too slowly for --timeout, is said (agent_upload.py).
UPLOAD_UNFINISHED = "the agent upload did not finish within"
#: A port that accepted and said nothing (`_await_banner`), and one that said something not SSH.
NO_BANNER = "sent no SSH banner"
NOT_SSH = "does not speak SSH"
#: sshd (or a firewall) dropped the connection before its greeting (`_dropped`).
DROPPED = "the connection before the SSH greeting"
REFUSED = "refused the connection"
LOST = "connection lost"
#: How a lost connection's sentence goes on when nothing came back on it (ssh_lost.py: the liveness watch, or the
#: round trip asked when an agent's hello did not come), not a close or a reset: the link went down.
SILENT_LINK = "the link to the node stopped answering"
#: How a lost connection's sentence names the jump hosts it went through, outermost first (ssh.py `lost_connection`,
#: whose `THROUGH_JUMP` says it too): "(through jump host ops@bastion:22)", "(through jump hosts a@x:22, b@y:22)".
THROUGH_JUMP = "through jump host"
_THROUGH_JUMPS = re.compile(rf"\({THROUGH_JUMP}s? ([^()]+)\)")
#: The node has no Python the agent can run, and nvidia-smi could not stand in (ssh_node.py `_smi_session`).
NO_PYTHON = "no usable "
#: The agent started but never said hello (session.py `wait_hello`), or did not answer a request.
NO_HELLO = "did not say hello"
NO_REPLY = "the agent did not answer"
#: Silence judged by a controller (health.py `tick`, latest.py `read_live`).
SAMPLES_MISSED = "samples missed"
SAMPLE_MISSED = "1 sample missed"
STORED_NO_SAMPLE = "the controller has stored no sample"

DNS_HINT = (
    "check the node's host in factory.yaml (and its HostName in ~/.ssh/config, if it has one) and this machine's DNS."
)
REFUSED_HINT = "start sshd on the node, or fix the node's port in factory.yaml (ssh.port, or Port in ~/.ssh/config)."
CONNECT_TIMEOUT_HINT = (
    "check that the node is up and that no firewall drops its SSH port; on a slow network raise "
    "ssh.connect_timeout_s in factory.yaml."
)
NETWORK_HINT = "check the network path to the node (ping it, and look at its routes and firewall)."
#: The TCP connect and the handshake went through, then no key got an answer: the link, or sshd hung in its user
#: lookup (an AuthorizedKeysCommand, NSS or PAM waiting on LDAP), not a refused key.
AUTH_UNANSWERED_HINT = (
    "check the network path to the node and that its sshd is not hung looking the user up (LDAP, NSS, PAM: sshd's "
    "log there); on a slow network raise ssh.connect_timeout_s in factory.yaml."
)
#: The upload's link still answered a round trip: it was slow, not gone (a gone one is `connection lost ...`).
UPLOAD_TIMEOUT_HINT = "check the network path to the node; on a slow link raise --timeout."
LOST_HINT = "check that the node is up and sshd still runs on it (`systemctl status sshd` there)."
#: A connection that went silent: nothing was closed, so the network path is the likelier cause than sshd.
SILENT_LINK_HINT = (
    "check the network path to the node (ping it, and look at its routes and firewall) and that the node is up; "
    "on a link with longer outages raise ssh.connect_timeout_s in factory.yaml."
)
#: A connection lost through jump hosts: the message names them, the hint too (any of them may be what went away).
LOST_JUMP_HINT = (
    "check that the jump host{plural} {names} and the node are up and that sshd still runs on {where} "
    "(`systemctl status sshd` there)."
)
NOT_SSH_HINT = "check that the port is sshd's, and that nothing in between eats the connection."
#: Silence is not proof of another server: a stopped (SIGSTOP), hung or overloaded sshd accepts and says nothing too.
SILENT_HINT = (
    "check that the port is sshd's and that sshd on the node is not stopped, hung or overloaded "
    "(`systemctl status sshd` there); a middlebox may also hold the connection."
)
#: sshd drops connections before its greeting when MaxStartups is reached, a tcpwrapper (hosts.deny) or
#: PerSourcePenalties says no, or it dies; a firewall can reset them too.
DROPPED_HINT = (
    "sshd on the node (or a firewall in between) dropped the connection: look at sshd's log there "
    "(MaxStartups, hosts.deny) and check that the node is not shutting down."
)
TRUST_HINT = "if the fingerprint is right, record it with `factoryctl nodes trust {node}`."
NO_PYTHON_HINT = (
    "install python3 (>= 3.9) on the node or set its `python:` in factory.yaml; without it, nvidia-smi must be on "
    "the node's PATH."
)
#: The agent started (Python ran) and then said nothing: a longer --timeout rarely helps, what hangs must be found.
AGENT_HANG_HINT = (
    "find what hangs with `factoryctl nodes check {node}`, or by running the node's `python:` by hand on it; raise "
    "--timeout only if the node is just slow."
)
#: A controller's node gone silent: the answer was read from the store, so no option of this command reaches it.
#: Worded for any number of nodes: one hint line names all the nodes it was given for.
CONTROLLER_SILENCE_HINT = (
    "no recent sample reached the controller: run `factoryctl nodes check {node}` for the nodes' side, and "
    "`factoryctl controller status` for the controller's."
)
AGENT_HINT = "run `factoryctl nodes check {node}` to diagnose the agent."
DRIVER_HINT = "check the NVIDIA driver on the node (`nvidia-smi`)."

#: Each kind's hint when its message names no sub-case (`{node}` is the node's name).
KIND_HINTS = {
    "dns": DNS_HINT,
    "refused": REFUSED_HINT,
    "timeout": AGENT_HANG_HINT,
    "banner": SILENT_HINT,
    "host_key": TRUST_HINT,
    "auth": auth_hint([], 0),
    "agent": AGENT_HINT,
    "driver": DRIVER_HINT,
}


def host_key_hint(node: str, message: str, known_hosts: str | Path = "known_hosts") -> str:
    """What to do about the `host_key` failure `message` of `node`: trust it, replace it, or give the node a new key.

    An unknown key is recorded with `nodes trust NODE`; a changed one, or one of a type not recorded for a host that
    has keys of other types recorded (as OpenSSH warns, that may be a man in the middle), only with `--replace`
    (without it the command refuses again, exit 4); a revoked one must not be trusted at all.
    """
    unreadable = _UNREADABLE.match(message)
    if unreadable:
        return unreadable_hint(unreadable[1], unreadable[2])
    if REVOKED_KEY in message:
        return f"the key is marked @revoked in {known_hosts}; the node must get a new host key."
    if CHANGED_KEY in message:
        return (
            "someone may be intercepting the connection, or the node was reinstalled; verify the new fingerprint "
            f"out of band, then run `factoryctl nodes trust {node} --replace`."
        )
    if OTHER_TYPES in message:
        return (
            f"{OTHER_TYPES_WARNING}; verify the new fingerprint out of band, then run "
            f"`factoryctl nodes trust {node} --replace` (it adds the key and keeps the recorded ones)."
        )
    return TRUST_HINT.format(node=node)


def changed_key_message(where: str, key_type: str, fingerprint: str, recorded: tuple[str, ...]) -> str:
    """The sentence of a changed host key, said alike by every command that meets one (connect, check, trust)."""
    return f"{CHANGED_KEY} for {where}: now {key_type} {fingerprint}, recorded {', '.join(recorded)}"


#: (kind, words in its message, hint) for the sub-cases, tried in order; the first whose words are in it wins.
_SUB_CASES = (
    ("refused", DROPPED, DROPPED_HINT),
    ("refused", SILENT_LINK, SILENT_LINK_HINT),
    ("refused", LOST, LOST_HINT),
    ("refused", "cannot connect to", NETWORK_HINT),
    ("timeout", AUTH_UNANSWERED, AUTH_UNANSWERED_HINT),
    ("timeout", NO_ANSWER, CONNECT_TIMEOUT_HINT),
    ("timeout", UPLOAD_UNFINISHED, UPLOAD_TIMEOUT_HINT),
    ("timeout", NO_HELLO, AGENT_HANG_HINT),
    ("timeout", NO_REPLY, AGENT_HANG_HINT),
    ("timeout", SAMPLES_MISSED, CONTROLLER_SILENCE_HINT),
    ("timeout", SAMPLE_MISSED, CONTROLLER_SILENCE_HINT),
    ("timeout", STORED_NO_SAMPLE, CONTROLLER_SILENCE_HINT),
    ("banner", NOT_SSH, NOT_SSH_HINT),
    ("driver", NO_PYTHON, NO_PYTHON_HINT),
)

#: How `authenticate`'s message names what kept a key from being offered (ssh_identities.py, ssh_handshake.py).
_LOCKED_KEY = re.compile(r"the key (\S+) needs a passphrase")
_LEFT_OUT = re.compile(r"IdentitiesOnly yes: (\d+) other ssh-agent key")
#: A key file factory.yaml or IdentityFile names that does not exist (`ssh_identities._no_file`), read back from a
#: stored message; not "no identity file and no ssh-agent keys" (nothing named at all).
_MISSING_KEY = re.compile(r"no identity file ([/~][^\s,;)]*)")
#: A private key file others may read (`ssh_identities._too_open`), and a known_hosts that cannot be read.
_OPEN_KEY = re.compile(r"the key (\S+) is accessible to")
_UNREADABLE = re.compile(rf"{UNREADABLE} (.+): ([^:]+)$")


def auth_message_hint(message: str) -> str:
    """`auth_hint` for the failure `message` tells: a key needing a passphrase or missing, keys left out, too many."""
    if message.startswith(AGENT_UNSIGNED):
        return AGENT_SIGN_HINT
    locked = _LOCKED_KEY.search(message)
    left_out = _LEFT_OUT.search(message)
    missing = _MISSING_KEY.search(message)
    exposed = _OPEN_KEY.search(message)
    skipped = [SkippedKey(locked[1], locked[0], True)] if locked else []
    skipped += [SkippedKey(missing[1], missing[0], False)] if missing else []
    skipped += [SkippedKey(exposed[1], exposed[0], False, too_open=True)] if exposed else []
    agent_failed = "ssh-agent (SSH_AUTH_SOCK=" in message
    return auth_hint(skipped, int(left_out[1]) if left_out else 0, "MaxAuthTries" in message, agent_failed)


def lost_jump_hint(hops: list[str]) -> str:
    """The hint of a connection lost through the jump hosts `hops` (their labels, outermost first): them and the node."""
    many = len(hops) > 1
    return LOST_JUMP_HINT.format(plural="s" * many, names=", ".join(hops), where="each" if many else "both")


def _through_jumps(message: str) -> list[str] | None:
    """The jump hosts a lost connection's `message` says it went through (outermost first); None if it names none."""
    found = _THROUGH_JUMPS.search(message) if LOST in message else None
    return None if found is None else found[1].split(", ")


def sub_case_hint(node: str, kind: str, message: str) -> str | None:
    """The hint of the sub-case of `kind` that `message` names; None when it names none the table knows."""
    if kind == "auth":
        return auth_message_hint(message)
    hops = _through_jumps(message) if kind == "refused" else None
    if hops is not None:  # before the table's LOST: the jump hosts are named in the hint as in the message
        return lost_jump_hint(hops)
    for case_kind, words, hint in _SUB_CASES:
        if kind == case_kind and words in message and (kind != "driver" or message.startswith(words)):
            return hint.format(node=node)
    return None


def node_error_hint(node: str, kind: str, message: str, known_hosts: str | Path = "known_hosts") -> str | None:
    """What to do about `node`'s failure of `kind` saying `message`: its sub-case's hint, else its kind's.

    None for a kind without a hint of its own here (`local`, `interrupted`): the error's own hint stands.
    """
    if kind == "host_key":
        return host_key_hint(node, message, known_hosts)
    found = sub_case_hint(node, kind, message)
    if found is not None:
        return found
    general = KIND_HINTS.get(kind)
    return None if general is None else general.format(node=node)


#: An older agent's refusal of a node one of whose addressed GPUs is lost, read when its error carries no
#: `other_gpus` (docs/agent-protocol.md, Errors): `GPU 3 is lost; nothing was changed (its other GPUs can be addressed
#: alone: 0-2,4-7)`, or from the version before it, which named the node twice, `GPU 3 on n47 is lost; ... alone:
#: n47/0-2,4-7)`. This agent says `GPU 3 is lost; nothing was changed` and sends the other GPUs as a field.
_LOST_GPU_REFUSAL = re.compile(
    r"(?P<gpu>GPU \d+)(?: on \S+)? is lost; nothing was changed"
    r"(?: \(its other GPUs can be addressed alone: (?:\S+/)?(?P<others>[\d,-]+)\))?$"
)


class LostGpuError(NodeError):
    """A node refused whole because an addressed GPU is lost: `others` are the GPUs that can be addressed alone.

    The message says only which GPU is lost and that nothing changed (the node is the error's `node`, the other GPUs
    go in the hint, where a command can quote them for the shell: cli/power_limits.py `hint_lost_gpus`).
    """

    def __init__(self, node: str, message: str, hint: str | None, others: str) -> None:
        super().__init__(node, "driver", message, hint)
        self.others = others


def lost_gpu_refusal(node: str, message: str, hint: str | None, other_gpus: object = None) -> NodeError | None:
    """The `LostGpuError` of the agent's lost-GPU refusal (a driver error); None for another lost-GPU error.

    `other_gpus` is the error's field of that name: the refusal's other GPUs, a list of indexes. Without it (an agent
    from before the field, the nvidia-smi bridge's other errors) the refusal is read from its wording. Without other
    GPUs (a node of one GPU) it is a plain `driver` error, the node named once all the same.
    """
    others = _gpu_indexes(other_gpus)
    if others is not None:
        if not others:
            return NodeError(node, "driver", message, hint)
        return LostGpuError(node, message, hint, fold_indexes(others))
    found = _LOST_GPU_REFUSAL.fullmatch(message)
    if found is None:
        return None
    said = f"{found['gpu']} is lost; nothing was changed"
    if not found["others"]:
        return NodeError(node, "driver", said, hint)
    return LostGpuError(node, said, hint, found["others"])


def _gpu_indexes(value: object) -> list[int] | None:
    """`value` as GPU indexes when it is a list of them (untrusted JSON: integers, not booleans, none negative)."""
    if not isinstance(value, list):
        return None
    if not all(type(index) is int and index >= 0 for index in value):
        return None
    return value


def hinted(error: NodeError) -> NodeError:
    """`error` with the table's hint when its message names a sub-case the table knows, else its own (or its kind's).

    A poll's errors pass through here, so that a node asked directly gets the hint a reader of the controller's store
    gives for the same failure (`node_error_hint`), whichever module raised it. A host key's own hint stands: it names
    the node's known_hosts file, which the message alone does not.
    """
    if error.kind == "host_key":
        return error
    hint = sub_case_hint(error.node, error.kind, error.message) or error.hint
    hint = hint or node_error_hint(error.node, error.kind, error.message)
    if hint == error.hint:
        return error
    return NodeError(error.node, error.kind, error.message, hint)
