r"""Quoting for the node's login shell, which may be fish as well as sh, bash or zsh.

OpenSSH hands a command to the login user's shell as one string (`$SHELL -c STRING`), so every argument we send is
quoted for that shell. `shlex.quote` quotes for POSIX shells only: fish reads `\\` and `\'` as escapes inside single
quotes, so on a fish node an argument holding a backslash arrived changed, and a crafted one (`\'$(cmd)\'`) ran a
command; zsh expands an unquoted word starting with `=` (`=ls` is `/bin/ls`), which `shlex` leaves bare. Here a
single-quoted run never holds a backslash or a quote: those two go in double quotes (`"\\"`, `"'"`), which all four
shells read the same way, and only words of plain characters go unquoted.

A command that outlives its caller (a timeout, Ctrl-C) is stopped by its process group, but OpenSSH delivers no
signal to a root login's command ("session signalling requires privilege separation"), and root is the usual login
on GPU nodes. So `with_group_report` has a command line say first, on stderr, the process group (and session) it
runs in: sshd starts the login shell as a session leader, so the shell's pid, `$PPID` of an `sh` it starts, names
both. `signal_group` is the command line that signals them over another channel; `group_ended_probe` then tells
whether anything of the group (and session) is left, since a process that moved to a session of its own (`setsid`)
escapes both and can keep the command's output open.

A command line travels in one SSH packet, and OpenSSH's sshd drops the whole connection on a packet over 256 KiB
(its log: "Bad packet length"), which looked like sshd dying; `check_command_line` refuses such a line before
anything is sent, as a usage error that says to pass long data on stdin.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Sequence

from factoryctl.errors import UsageError

#: OpenSSH's PACKET_MAX_SIZE: sshd ends the connection on a longer packet.
SSHD_MAX_PACKET = 256 * 1024
#: The longest command line that fits in such a packet whatever the cipher: less the exec request's other fields
#: (message type, channel, "exec", want-reply, the line's length: 18 bytes), the padding-length byte and the most
#: padding (19 bytes for a 16-byte block).
MAX_COMMAND_LINE = SSHD_MAX_PACKET - 18 - 1 - 19

#: Words every shell reads literally when bare (shlex's set without `=` and `%`: zsh's `=cmd`, fish 2's `%pid`).
_BARE = re.compile(r"[A-Za-z0-9_@+:,./-]+\Z")
_QUOTE_OR_BACKSLASH = re.compile(r"(['\\])")
#: `NAME=value`: a shell variable assignment when it comes before the command.
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*=)(.*)\Z", re.DOTALL)


def shell_quote(word: str) -> str:
    """`word` as one argument for sh, bash, zsh and fish alike (`it's` -> `'it'"'"'s'`).

    A leading `NAME=` stays bare, so that `LC_ALL=C cmd` is still an assignment for the command (`ssh host VAR=x
    cmd`, pdsh habits); only its value is quoted (`A='~/x'`: no tilde expansion either).
    """
    if _BARE.match(word):
        return word
    assignment = _ASSIGNMENT.match(word)
    if assignment is not None:
        return assignment[1] + (_quoted(assignment[2]) if assignment[2] else "''")
    return _quoted(word) if word else "''"


def _quoted(word: str) -> str:
    if _BARE.match(word):
        return word
    pieces = []
    for piece in _QUOTE_OR_BACKSLASH.split(word):
        if piece == "'":
            pieces.append('"\'"')
        elif piece == "\\":
            pieces.append('"\\\\"')
        elif piece:
            pieces.append(f"'{piece}'")
    return "".join(pieces)


def shell_join(argv: Iterable[str]) -> str:
    """Argv as one command line for the node's login shell (each word through `shell_quote`)."""
    return " ".join(shell_quote(word) for word in argv)


def with_group_report(command: str, token: str) -> str:
    """`command` (a login shell's command line) after a line `TOKEN:PGID` on stderr: the group it runs in.

    The report is its own `sh`, so it reads alike under every login shell, and `;` runs the command after it in sh,
    bash, zsh and fish alike; the command line's exit status stays the command's, its stdin the command's.
    """
    report = shell_join(["sh", "-c", f'echo "{token}:$PPID" >&2'])
    return f"{report}; {command}"


def group_token() -> str:
    """A fresh token for `with_group_report` (always this long: `check_argv` counts it)."""
    return f"factoryctl-pgid-{secrets.token_hex(8)}"


def command_line(argv: Sequence[str], token: str, login_output: bool) -> str:
    """The line `SshConnection.run` sends for argv: `with_group_report`'s, after `echo TOKEN` unless `login_output`.

    What the login shell prints before that token is dropped (`ssh_channel.CommandStdout`).
    """
    command = with_group_report(shell_join(argv), token)
    return command if login_output else f"echo {token}; {command}"  # `echo` and `;` read alike in every shell


def check_argv(argv: Sequence[str], login_output: bool) -> None:
    """UsageError (exit 2) if argv's command line (`command_line`) is more than an SSH server takes.

    For a caller to check before connecting; `SshConnection.run_shell` checks the line again before sending it.
    """
    check_command_line(command_line(argv, group_token(), login_output))


def check_command_line(command: str) -> None:
    """UsageError if `command`, in the bytes sent (`surrogateescape`: argv's bytes as given), is over MAX_COMMAND_LINE."""
    size = len(command.encode("utf-8", "surrogateescape"))
    if size > MAX_COMMAND_LINE:
        raise UsageError(
            f"the command line is {size:,} bytes; an SSH server takes at most {MAX_COMMAND_LINE:,} (OpenSSH's "
            "256 KiB packet limit).",
            "pass long data on standard input instead: `factoryctl exec all -- sh -c 'cat > /tmp/data' < file`.",
        )


def signal_group(pgid: int, signals: Sequence[str]) -> str:
    """The command line that sends `signals` (names: `INT`, `KILL`), in turn, to process group and session `pgid`.

    The session (`pkill -s`, where there is one) also reaches what moved to a group of its own (GNU `timeout`).
    """
    script = 'for s; do kill -s "$s" -- "-$0"; pkill "-$s" -s "$0"; done 2>/dev/null; true'  # $0: the group
    return shell_join(["sh", "-c", script, str(pgid), *signals])


#: What `group_ended_probe` prints when nothing is left of the group and its session.
GROUP_ENDED = "factoryctl-group-ended"


def group_ended_probe(pgid: int) -> str:
    """The command line that prints GROUP_ENDED when process group `pgid` is gone and its session empty.

    Gone means `kill -s 0` says "No such process" (not a refusal, EPERM: then something is still there); a session
    member left in a group of its own (`pgrep -s`, where there is pgrep) counts as not ended.
    """
    script = (
        'if e=$(kill -s 0 -- "-$0" 2>&1) || pgrep -s "$0" >/dev/null 2>&1; then :; '
        'else case $e in *"No such process"*) echo "$1" ;; esac; fi'
    )
    return shell_join(["sh", "-c", script, str(pgid), GROUP_ENDED])
