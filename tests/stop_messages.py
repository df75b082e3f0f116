"""What a command says on stderr when Ctrl-C, SIGTERM or SIGHUP stops it (docs/cli.md, Exit codes): one copy for the tests."""

from __future__ import annotations

import signal

INTERRUPTED = [
    "factoryctl: interrupted",
    "hint: Ctrl-C stopped it (exit 130); run the command again for a complete result.",
]
TERMINATED = [
    "factoryctl: terminated",
    "hint: SIGTERM stopped it (exit 143: `timeout`, systemd or kill); run the command again, with more time if a time "
    "limit ended it.",
]
HUNG_UP = [
    "factoryctl: hung up",
    "hint: SIGHUP stopped it (exit 129: its terminal closed, or kill -HUP); run the command again, under nohup or in "
    "tmux to outlive the terminal.",
]
#: (signal, exit status, stderr lines) for parametrized tests, and their ids.
STOPS = [(signal.SIGINT, 130, INTERRUPTED), (signal.SIGTERM, 143, TERMINATED), (signal.SIGHUP, 129, HUNG_UP)]
STOP_IDS = ["SIGINT", "SIGTERM", "SIGHUP"]
