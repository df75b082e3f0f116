"""One error type for every failure a user can see, and the exit codes scripts rely on.

Every failure is a `FactoryError` carrying a one-sentence message and a hint; the CLI's single error boundary
(`factoryctl.cli.app.main`) prints both to stderr and exits with the error's `ExitCode`. Lower layers raise these
and never print.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Process exit statuses, as documented in docs/cli.md (Exit codes) and README.md."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    CONFIG = 3
    CONNECTION = 4
    TIMEOUT = 124
    HUNG_UP = 129  # 128 + SIGHUP: the terminal closed (or `kill -HUP`) while a command ran; only a signal ends so
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE: whoever read our stdout went away (`| head`); nothing is printed
    TERMINATED = 143  # 128 + SIGTERM: cron's timeout, systemd


#: Severity order used when nodes fail differently: the most severe class wins. An operator's mistake met on a
#: node (a bad ~/.ssh/config entry: 3, a usage error: 2) outranks the nodes' own failures, as it would have stopped
#: the command had it been found before any node was reached.
_SEVERITY = {ExitCode.CONFIG: 5, ExitCode.USAGE: 4, ExitCode.CONNECTION: 3, ExitCode.TIMEOUT: 2, ExitCode.FAILURE: 1}


def most_severe(codes: list[ExitCode]) -> ExitCode:
    """Return the exit code that wins when several nodes fail differently (3, 2, 4, then 124, then 1)."""
    worst = ExitCode.OK
    for code in codes:
        if _SEVERITY.get(code, 0) > _SEVERITY.get(worst, 0):
            worst = code
    return worst


class FactoryError(Exception):
    """A failure with a human sentence (`message`) and what to do about it (`hint`)."""

    exit_code: ExitCode = ExitCode.FAILURE
    title: str = "error"

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(FactoryError):
    """A bad option or value given by the user; nothing was changed."""

    exit_code = ExitCode.USAGE
    title = "usage error"


class ConfigError(FactoryError):
    """factory.yaml is missing, malformed or invalid."""

    exit_code = ExitCode.CONFIG
    title = "config error"


class NodeError(FactoryError):
    """A failure on one node, classified by `kind` (docs/cli.md: dns, refused, timeout, banner, host_key, ...)."""

    #: kind -> exit code; connection-class kinds are 4, timeouts 124, the rest 1.
    KIND_EXIT: ClassVar[dict[str, ExitCode]] = {
        "dns": ExitCode.CONNECTION,
        "refused": ExitCode.CONNECTION,
        "banner": ExitCode.CONNECTION,
        "host_key": ExitCode.CONNECTION,
        "auth": ExitCode.CONNECTION,
        "timeout": ExitCode.TIMEOUT,
        "agent": ExitCode.FAILURE,
        "driver": ExitCode.FAILURE,
        "local": ExitCode.FAILURE,  # a limit of this machine (threads, files): transport/host_limits.py
    }

    def __init__(self, node: str, kind: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.node = node
        self.kind = kind
        self.exit_code = self.KIND_EXIT.get(kind, ExitCode.FAILURE)

    def said(self) -> str:
        """The message for a person, naming the node first (`n01: ...`) unless the sentence already begins with it.

        The message itself leaves the node out (`node` says it, in JSON); stderr and notifications need it said.
        """
        message = self.message.rstrip()
        if message.startswith((f"{self.node}: ", f"{self.node} ", f"{self.node}'s ")):  # not "n:22 refused"
            return message
        return f"{self.node}: {message}"

    def as_json(self) -> dict[str, str]:
        """The `errors` entry of a listing: `{node, error, message}`."""
        return {"node": self.node, "error": self.kind, "message": self.message}

    def as_report(self) -> dict[str, str]:
        """`as_json` plus this error's own hint, when it has one (for `report_node_errors`, not for listings)."""
        return {**self.as_json(), "hint": self.hint} if self.hint else self.as_json()


class ActionFailed(FactoryError):
    """An action (a remote command, a power change, a job) did not succeed."""

    exit_code = ExitCode.FAILURE
