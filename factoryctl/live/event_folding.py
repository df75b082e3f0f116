"""Many nodes changing state alike, folded into one line of the events panel: `64 nodes up (n[01-64])`.

The panel is a few lines tall, and a fleet changing state at once (a controller's start) must not push out the XID,
ECC and thermal events an operator must see. Node state events of one kind that say the same thing (but for the
node's name) within `FOLD_WINDOW_S` of the first become one event naming the folded node set, as the CLI folds
failures (model/folding.py), stamped with its first event's time and saying how long the burst lasted (`over 4 s`)
when it took a second or more, in words for several nodes (`their addresses refused the connection`, never "its").
Groups of fewer than `FOLD_AT_LEAST` nodes stay as they are. Imports no Textual.

A line counts every node of its burst: callers fold all the events they hold, never a trimmed few (a fleet of 2,000
going down read "500 nodes down"). When their events were cut at some time all the same (a limit on what is kept
or read), a group that may have begun before the cut says so: `500+ nodes down`. The folded node set of a burst is
remembered (`_folded_names`): folding 2,000 names took ClusterShell 0.15 s, on every refresh.

A line must never hide a node's later change: a node joins a group only if it opened after the node's previous
state change (or the node's previous event is in that group: a repeat says nothing new). So a node killed twice
gets a line per outage, the count is of distinct nodes, and the newest line naming a node says its latest state.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from factoryctl.live.services import DashboardEvent
from factoryctl.model.folding import fold_nodes, without_address

#: The kinds folded: a node's state changes (never an alarm of one GPU, a drain or a power change).
FOLDED_KINDS = frozenset({"node_up", "node_down", "node_degraded"})
#: Events of one kind and wording this close to the first of them are folded together.
FOLD_WINDOW_S = 30.0
#: Folding starts at this many nodes (two lines read as well as one).
FOLD_AT_LEAST = 3
#: A folded line says how long its burst lasted from this long on (`64 nodes up (n[01-64]; over 3 s)`).
SPAN_SHOWN_FROM_S = 1.0

_NODE = "\x01"  # not NUL: without_address marks addresses with it


@dataclass
class _Group:
    """Alike state events being folded: where the first stands among all events, and the events so far."""

    wording: str
    events: list[DashboardEvent] = field(default_factory=list)
    places: list[int] = field(default_factory=list)  # each event's place

    def add(self, place: int, event: DashboardEvent) -> None:
        """Event number `place` joins the group."""
        self.events.append(event)
        self.places.append(place)

    @property
    def opened_at(self) -> int:
        """Its first event's place among the time-ordered events."""
        return self.places[0]

    @property
    def first_time(self) -> float:
        """When its first event happened: the group takes alike events for `FOLD_WINDOW_S` from then."""
        return self.events[0].time

    def nodes(self) -> list[str]:
        """Each node of the group once, in the order they joined."""
        return list(dict.fromkeys(e.node for e in self.events if e.node))


def _wording(event: DashboardEvent) -> str | None:
    """What a foldable event says, its node's name marked (`NODE is down: ...`); None if it is not one."""
    if event.kind not in FOLDED_KINDS or not event.node:
        return None
    wording = without_address(event.message.replace(event.node, _NODE))
    return wording if wording.startswith(f"{_NODE} is ") else None


@functools.lru_cache(maxsize=64)
def _folded_names(names: tuple[str, ...]) -> str:
    """`fold_nodes` of a burst's nodes, remembered: every refresh folds the same bursts again."""
    return fold_nodes(names)


def _plural(what: str) -> str:
    """A node's words said of several: `its address refused` reads `their addresses refused` (never "its").

    `without_address` words a node's own address "its address"; the node's name, marked, becomes "each node".
    """
    return re.sub(r"\bits address\b", "their addresses", what).replace(_NODE, "each node")


def _folded(group: _Group, cut_at: float | None) -> DashboardEvent:
    names = group.nodes()
    what = _plural(group.wording.removeprefix(f"{_NODE} is "))
    first = group.events[0]
    span_s = group.events[-1].time - first.time
    span = f"; over {span_s:.0f} s" if span_s >= SPAN_SHOWN_FROM_S else ""
    partial = cut_at is not None and first.time - cut_at <= FOLD_WINDOW_S  # its burst may have begun before the cut
    message = f"{len(names)}{'+' if partial else ''} nodes {what} ({_folded_names(tuple(names))}{span})"
    return DashboardEvent(first.time, None, first.kind, message, first.severity, nodes=tuple(names))


class _Folder:
    """Assigns each event to a line: its own, or an open group of alike events it may join."""

    def __init__(self) -> None:
        #: The groups still in their window, per kind and wording, oldest first.
        self.open: dict[tuple[str, str], list[_Group]] = {}
        #: Each node's latest state event: its place, and the group it joined (None: a line of its own).
        self.last_change: dict[str, tuple[int, _Group | None]] = {}
        #: Every line, where its first event stands: an event as it is (one not folded), or a group.
        self.lines: list[tuple[int, DashboardEvent | _Group]] = []

    def add(self, place: int, event: DashboardEvent) -> None:
        """Event number `place` of the time-ordered events: a line of its own, or into an alike group."""
        wording = _wording(event)
        if wording is None:
            self.lines.append((place, event))
            if event.kind in FOLDED_KINDS and event.node:
                self.last_change[event.node] = (place, None)
            return
        key = (event.kind, wording)
        alike = self.open[key] = [g for g in self.open.get(key, []) if event.time - g.first_time <= FOLD_WINDOW_S]
        group = next((g for g in alike if self._may_join(g, event)), None)
        if group is None:  # none, or the node changed since each opened: a new line, which others may join
            group = _Group(wording)
            alike.append(group)
            self.lines.append((place, group))
        group.add(place, event)
        assert event.node is not None  # `_wording` said it is a node's event
        self.last_change[event.node] = (place, group)

    def _may_join(self, group: _Group, event: DashboardEvent) -> bool:
        """No change of the node since the group opened (a repeat of what it said there is no change)."""
        assert event.node is not None
        place, joined = self.last_change.get(event.node, (-1, None))
        return joined is group or place < group.opened_at

    def folded(self, cut_at: float | None) -> list[tuple[float, int, DashboardEvent]]:
        """Every line as (time, place, event): a group of too few nodes as its events, each at its own place.

        A group that may lack nodes from before `cut_at` (events before it were left out) counts `N+`.
        """
        out: list[tuple[float, int, DashboardEvent]] = []
        for place, line in self.lines:
            if isinstance(line, DashboardEvent):
                out.append((line.time, place, line))
            elif len(line.nodes()) < FOLD_AT_LEAST:
                out.extend((e.time, at, e) for at, e in zip(line.places, line.events, strict=True))
            else:
                out.append((line.events[0].time, place, _folded(line, cut_at)))
        return out


def fold_state_events(events: Sequence[DashboardEvent], cut_at: float | None = None) -> tuple[DashboardEvent, ...]:
    """`events` with each burst of alike node state events folded into one, at its first's time; oldest first.

    Lines of one time keep the order of their first events, so a node's later change is never shown before it.
    `cut_at`: events older than this were left out by the caller (None: none were), so a burst near it is `N+`.
    """
    folder = _Folder()
    for place, event in enumerate(sorted(events, key=lambda e: e.time)):
        folder.add(place, event)
    return tuple(event for _, _, event in sorted(folder.folded(cut_at), key=lambda line: line[:2]))
