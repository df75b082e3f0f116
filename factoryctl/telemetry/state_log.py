"""Node state changes as log lines a person can read at 2,000 nodes: alike changes folded into one line per tick.

At start a controller of 2,000 unreachable nodes logged 2,000 identical warnings (`g0201 is down: 127.0.0.1:22
refused the connection`, one per node), and a reload as many again. The writer hands each change here as it
happens; once per tick the changes that say the same thing (the same state and reason, each node's own address
taken out) become one line under their folded node set, as `report_node_errors` does for one-shot commands:
`g[0201-2000] (1800) are down: refused the connection`. Each node's own line is still logged at debug level, and
each change is still one event per node in the store (`factoryctl events`). `daemon_hint` keeps the CLI's
hints that mean nothing to a daemon's operator out of its log.
"""

from __future__ import annotations

import logging

from factoryctl.model.folding import fold_nodes, without_address
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import StoreError


class StateLog:
    """Gathers node state changes and link failures, and logs them folded (`take`, then `write`, once a tick)."""

    def __init__(self, log: logging.Logger) -> None:
        """Log into `log`."""
        self._log = log
        self._pending: list[tuple[int, str, str, str]] = []  # (level, what: "is down", node, what it said)

    def change(self, change: NodeState) -> None:
        """A node changed state ("n1 is down: no sample for 10 s", the node named once)."""
        said = (change.message or "").removeprefix(f"{change.node}:").strip() if change.state != "up" else ""
        level = logging.INFO if change.state == "up" else logging.WARNING
        self._add(level, f"is {change.state}", change.node, said)

    def failure(self, node: str, message: str, level: int) -> None:
        """A link failure that changed no state (a blip on a node still up, or a down node failing again)."""
        self._add(level, "", node, message.removeprefix(f"{node}:").strip())

    def _add(self, level: int, what: str, node: str, said: str) -> None:
        self._pending.append((level, what, node, said))

    def take(self) -> list[tuple[int, str, str, str]]:
        """What was gathered since the last call, for `write` (the writer takes it under its lock)."""
        pending, self._pending = self._pending, []
        return pending

    def write(self, pending: list[tuple[int, str, str, str]]) -> None:
        """Log `pending`: one line per kind of change, each node's own line at debug level."""
        groups: dict[tuple[int, str, str], list[tuple[str, str]]] = {}
        for level, what, node, said in pending:
            groups.setdefault((level, what, without_address(said)), []).append((node, said))
        for (level, what, plain), nodes in groups.items():
            if len(nodes) == 1 or level < logging.INFO:
                for node, said in nodes:
                    self._line(level, node, what, said)
                continue
            names = [node for node, _ in nodes]
            saids = {said for _, said in nodes}
            said = saids.pop() if len(saids) == 1 else plain
            plural = what.replace("is ", "are ", 1)
            self._line(level, f"{fold_nodes(names)} ({len(names)})", plural, said)
            if self._log.isEnabledFor(logging.DEBUG):
                for node, one in nodes:
                    self._line(logging.DEBUG, node, what, one)

    def _line(self, level: int, who: str, what: str, said: str) -> None:
        if what and said:
            self._log.log(level, "%s %s: %s", who, what, said)
        elif what:
            self._log.log(level, "%s %s", who, what)
        else:
            self._log.log(level, "%s: %s", who, said)


def daemon_hint(exc: StoreError) -> str:
    """`exc`'s hint for a daemon's log line (" hint: ..."), or "" when it has none a daemon's operator can follow.

    The CLI's last-resort hint, rerun with --debug, means nothing for a controller started by systemd.
    """
    if not exc.hint or "--debug" in exc.hint:
        return ""
    return f" hint: {exc.hint}"
