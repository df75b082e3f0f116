"""Node state changes as log lines a person can read at 2,000 nodes: alike changes folded into one line per tick.

The writer hands each change here as it happens; once per tick the changes that say the same thing (the same state
and reason, each node's own address taken out) become one line under their folded node set, as
`report_node_errors` does for one-shot commands: `g[0201-2000] (1800) are down: refused the connection`. Each
node's own line is still logged at debug level, and each change is still one event per node in the store
(`factoryctl events`). `daemon_hint` keeps the CLI's hints that mean nothing to a daemon's operator out of its log.
Node clocks found off (or agreeing again) are folded the same way, by direction, their offsets as a range. GPU events
(lost, back, XIDs, ECC errors, thermal slowdown), which went to the store alone, are logged too, one line per kind and
what it says per tick, GPUs folded (`g[0001-0200]/0-7 (1600 GPUs on 200 nodes): GPU fell off the bus`): a fleet-wide
fault is a few lines, not thousands; errors at ERROR, slowdowns at WARNING, a GPU back at INFO.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from factoryctl.model.folding import fold_indexes, fold_nodes, without_address
from factoryctl.store.rows import Event, NodeState
from factoryctl.store.sqlite import StoreError

#: What a clock line says, by direction: (one node, several nodes), each node's offset in seconds put in.
_CLOCK_SAID = {
    "ahead of": (
        "'s clock is {} s ahead of the controller's; its samples are stamped with the controller's time until it "
        "agrees again (check NTP on the node).",
        " clocks are {} s ahead of the controller's; their samples are stamped with the controller's time until "
        "they agree again (check NTP on the nodes).",
    ),
    "behind": (
        "'s clock is {} s behind the controller's; its samples are stamped with the controller's time until it "
        "agrees again (check NTP on the node).",
        " clocks are {} s behind the controller's; their samples are stamped with the controller's time until "
        "they agree again (check NTP on the nodes).",
    ),
    "agrees": (
        "'s clock agrees with the controller's again; its samples keep their own time.",
        " clocks agree with the controller's again; their samples keep their own time.",
    ),
}
_CLOCK = "clock"  # the `what` of a clock line in the pending list (its `said`: direction and offset)
_LEVELS = {"error": logging.ERROR, "warning": logging.WARNING, "info": logging.INFO}
#: Folded GPU lines name at most this many node sets with their own GPU indexes (`g[01-40]/0-7, g[41-50]/0-3`).
_GPU_SETS_NAMED = 3


class StateLog:
    """Gathers node state changes and link failures, and logs them folded (`take`, then `write`, once a tick)."""

    def __init__(self, log: logging.Logger) -> None:
        """Log into `log`."""
        self._log = log
        self._pending: list[tuple[int, str, str, str]] = []  # (level, what: "is down", node, what it said)
        self._gpu: list[Event] = []  # GPU events found this tick (by the writer's thread alone: no lock)

    def change(self, change: NodeState) -> None:
        """A node changed state ("n1 is down: no sample for 10 s", the node named once)."""
        said = (change.message or "").removeprefix(f"{change.node}: ").strip() if change.state != "up" else ""
        level = logging.INFO if change.state == "up" else logging.WARNING
        self._add(level, f"is {change.state}", change.node, said)

    def failure(self, node: str, message: str, level: int) -> None:
        """A link failure that changed no state (a blip on a node still up, or a down node failing again)."""
        self._add(level, "", node, message.removeprefix(f"{node}: ").strip())

    def clock(self, node: str, offset: float | None) -> None:
        """A node's clock is `offset` s ahead of the controller's (negative: behind), or agrees again (None)."""
        way, seconds = clock_way(offset)
        self._add(logging.INFO if offset is None else logging.WARNING, _CLOCK, node, f"{way} {seconds}")

    def _add(self, level: int, what: str, node: str, said: str) -> None:
        self._pending.append((level, what, node, said))

    def take(self) -> list[tuple[int, str, str, str]]:
        """What was gathered since the last call, for `write` (the writer takes it under its lock)."""
        pending, self._pending = self._pending, []
        return pending

    def write(self, pending: list[tuple[int, str, str, str]]) -> None:
        """Log `pending`: one line per kind of change, each node's own line at debug level."""
        groups: dict[tuple[int, str, str], list[tuple[str, str]]] = {}
        clocks: dict[tuple[int, str], list[tuple[str, int]]] = {}
        for level, what, node, said in pending:
            if what == _CLOCK:
                way, seconds = said.rsplit(" ", 1)
                clocks.setdefault((level, way), []).append((node, int(seconds)))
                continue
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

        self._write_clocks(clocks)

    def _write_clocks(self, clocks: dict[tuple[int, str], list[tuple[str, int]]]) -> None:
        """One line per direction: its node, or its nodes folded with the range of their offsets."""
        for (level, way), nodes in clocks.items():
            several = _CLOCK_SAID[way][1]
            seconds = sorted(offset for _, offset in nodes)
            if len(nodes) == 1:
                self._log.log(level, "%s", clock_said(nodes[0][0], way, seconds[0]))
                continue
            spread = str(seconds[0]) if seconds[0] == seconds[-1] else f"{seconds[0]}-{seconds[-1]}"
            names = [node for node, _ in nodes]
            self._log.log(level, "%s (%d)%s", fold_nodes(names), len(names), several.format(spread))
            if self._log.isEnabledFor(logging.DEBUG):
                for node, offset in nodes:
                    self._log.debug("%s", clock_said(node, way, offset))

    def gpu(self, events: list[Event]) -> list[Event]:
        """GPU events found in a sample (`health.gpu_events`), for `write_gpu`; returns them."""
        self._gpu.extend(events)
        return events

    def write_gpu(self) -> None:
        """Log the GPU events gathered since the last call: one line per kind and what it says, GPUs folded."""
        groups: dict[tuple[int, str, str], list[tuple[Event, str]]] = {}
        for event in self._gpu:
            said = event.message.removeprefix(f"{event.node}/{event.gpu}: ")
            plain, count = _counted(said) if event.kind == "ecc" else (said, "")
            groups.setdefault((_LEVELS.get(event.severity, logging.WARNING), event.kind, plain), []).append(
                (event, count)
            )
        self._gpu = []
        for (level, _, plain), found in groups.items():
            if len(found) == 1:
                self._log.log(level, "%s", found[0][0].message)
                continue
            counts = sorted({int(count) for _, count in found if count})
            spread = f" {counts[0]}" if len(counts) == 1 else f" {counts[0]}-{counts[-1]}" if counts else ""
            self._log.log(level, "%s: %s%s", _folded_gpus([event for event, _ in found]), plain, spread)
            if self._log.isEnabledFor(logging.DEBUG):
                for event, _ in found:
                    self._log.debug("%s", event.message)

    def _line(self, level: int, who: str, what: str, said: str) -> None:
        if what and said:
            self._log.log(level, "%s %s: %s", who, what, said)
        elif what:
            self._log.log(level, "%s %s", who, what)
        else:
            self._log.log(level, "%s: %s", who, said)


def _counted(said: str) -> tuple[str, str]:
    """("uncorrectable ECC errors", "3") from "uncorrectable ECC errors 3": the count is folded as a range."""
    found = re.fullmatch(r"(.*) (\d+)", said)
    return (found.group(1), found.group(2)) if found else (said, "")


def _folded_gpus(events: Sequence[Event]) -> str:
    """`g[0001-0200]/0-7 (1600 GPUs on 200 nodes)`: nodes with the same GPUs share a node set, a few sets at most."""
    indexes: dict[str, set[int]] = {}
    for event in events:
        indexes.setdefault(event.node or "", set()).add(event.gpu if event.gpu is not None else 0)
    alike: dict[str, list[str]] = {}
    for node, gpus in indexes.items():
        alike.setdefault(fold_indexes(gpus), []).append(node)
    if len(alike) <= _GPU_SETS_NAMED:
        who = ", ".join(f"{fold_nodes(nodes)}/{gpus}" for gpus, nodes in alike.items())
    else:
        who = f"GPUs of {fold_nodes(list(indexes))}"
    count = sum(len(gpus) for gpus in indexes.values())
    on = f" on {len(indexes)} nodes" if len(indexes) > 1 else ""
    return f"{who} ({count} GPUs{on})"


def clock_said(node: str, way: str, seconds: int) -> str:
    """What one node's clock line says (`way`, `seconds` as `clock_way` gives them), as its `clock_skew` event does."""
    return node + _CLOCK_SAID[way][0].format(seconds)


def clock_way(offset: float | None) -> tuple[str, int]:
    """("ahead of" | "behind", whole seconds) for a clock `offset` s ahead, ("agrees", 0) for None."""
    if offset is None:
        return "agrees", 0
    return ("ahead of" if offset > 0 else "behind"), round(abs(offset))


def daemon_hint(exc: StoreError) -> str:
    """`exc`'s hint for a daemon's log line (" hint: ..."), or "" when it has none a daemon's operator can follow.

    The CLI's last-resort hint, rerun with --debug, means nothing for a controller started by systemd.
    """
    if not exc.hint or "--debug" in exc.hint:
        return ""
    return f" hint: {exc.hint}"
