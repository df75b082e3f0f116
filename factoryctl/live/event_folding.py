"""Many nodes changing state alike, folded into one line of the events panel: `64 nodes up (n[01-64])`.

The panel is a few lines tall, and a fleet changing state at once (a controller's start) must not push out the XID,
ECC and thermal events an operator must see. Node state events of one kind that say the same thing (but for the
node's name) within `FOLD_WINDOW_S` of the first become one event naming the folded node set, as the CLI folds
failures (model/folding.py). Fewer than `FOLD_AT_LEAST` stay as they are. Imports no Textual.
"""

from __future__ import annotations

from collections.abc import Sequence

from factoryctl.live.services import DashboardEvent
from factoryctl.model.folding import fold_nodes, without_address

#: The kinds folded: a node's state changes (never an alarm of one GPU, a drain or a power change).
FOLDED_KINDS = frozenset({"node_up", "node_down", "node_degraded"})
#: Events of one kind and wording this close to the first of them are folded together.
FOLD_WINDOW_S = 30.0
#: Folding starts at this many nodes (two lines read as well as one).
FOLD_AT_LEAST = 3

_NODE = "\x01"  # not NUL: without_address marks addresses with it


def _wording(event: DashboardEvent) -> str | None:
    """What a foldable event says, its node's name marked (`NODE is down: ...`); None if it is not one."""
    if event.kind not in FOLDED_KINDS or not event.node:
        return None
    wording = without_address(event.message.replace(event.node, _NODE))
    return wording if wording.startswith(f"{_NODE} is ") else None


def _folded(group: list[DashboardEvent], wording: str) -> DashboardEvent:
    names = [e.node for e in group if e.node]
    what = wording.removeprefix(f"{_NODE} is ").replace(_NODE, "its node")
    first = group[0]
    message = f"{len(names)} nodes {what} ({fold_nodes(names)})"
    return DashboardEvent(first.time, None, first.kind, message, first.severity, nodes=tuple(names))


def fold_state_events(events: Sequence[DashboardEvent]) -> tuple[DashboardEvent, ...]:
    """`events` (oldest first) with each burst of alike node state events folded into one, at its first's time."""
    groups: dict[tuple[str, str], list[DashboardEvent]] = {}
    order: list[tuple[tuple[str, str], list[DashboardEvent]] | DashboardEvent] = []
    for event in events:
        wording = _wording(event)
        if wording is None:
            order.append(event)
            continue
        key = (event.kind, wording)
        group = groups.get(key)
        if group is None or event.time - group[0].time > FOLD_WINDOW_S:
            group = groups[key] = []
            order.append((key, group))
        group.append(event)
    out: list[DashboardEvent] = []
    for item in order:
        if isinstance(item, DashboardEvent):
            out.append(item)
            continue
        (_, wording), group = item
        out.extend(group if len(group) < FOLD_AT_LEAST else [_folded(group, wording)])
    return tuple(sorted(out, key=lambda e: e.time))
