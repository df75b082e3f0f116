"""Many nodes that failed alike said on one line: node names folded into a set, and each node's own address out.

At 2,000 nodes a failure is 2,000 lines unless nodes that said the same thing share one under their folded node set
(`g[0201-2000] (1800): refused the connection`). One-shot commands (`cli.render.report_node_errors`) and the
controller's log (`telemetry.state_log`) fold the same way: the rules live here once so the two cannot drift apart.
A node's GPU indexes fold the same way (`0-2,4-7`), for hints, the dashboard and history tables alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

#: A folded node set longer than this is cut by `fold_nodes`, with how many nodes it names (reloads, log lines).
FOLD_MAX_CHARS = 200

#: A node's own address in a message: `host:port`, `user@host:port`, `[v6]:port`, `[name]:port`, or the name after
#: "resolve". The host part needs a letter or a dot, so a time such as 03:20 is not an address, and an ISO time
#: (`2026-11-22T07:42:11Z`) is not one either.
_ADDRESS = (  # compiled on first use (re caches it), not on every CLI start
    r"(?<=resolve )[^\s:]+"
    r"|(?<![\w.@:\[-])(?:[\w.-]+@)?(?:\[[\w:.-]+\]|(?!\d{4}-\d\d-\d\dT\d)[\w-]*[A-Za-z.][\w.-]*):\d+\b"
)


def fold(names: Sequence[str]) -> str:
    """ClusterShell's folded node set (`n[01-03,07]`)."""
    from ClusterShell.NodeSet import NodeSet

    return str(NodeSet.fromlist(list(names)))


def fold_nodes(names: Sequence[str], max_chars: int = FOLD_MAX_CHARS) -> str:
    """`fold`, cut short (`n[01,03,...]`) past `max_chars`; callers add how many nodes it names (`(1000)`)."""
    folded = fold(names)
    if len(folded) <= max_chars:
        return folded
    cut = folded[:max_chars].rsplit(",", 1)[0] + ",..."
    if cut.count("[") > cut.count("]"):
        cut += "]"
    return cut


def fold_indexes(indexes: Iterable[int]) -> str:
    """`0-2,4-7`: GPU indexes as TARGET/GPUS takes them (`power set n47/0-2,4-7`), runs of consecutive ones folded."""
    runs: list[list[int]] = []
    for index in sorted(set(indexes)):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    return ",".join(str(first) if first == last else f"{first}-{last}" for first, last in runs)


def without_address(message: str) -> str:
    """`message` with the node's own address taken out, so nodes that failed alike fold onto one line.

    A leading address is dropped (`127.0.0.2:1 refused the connection` -> `refused the connection`); one inside
    the sentence becomes "its address" (`no answer from its address within 5 s`).
    """
    marked = re.sub(_ADDRESS, "\0", message)
    return marked.removeprefix("\0 ").replace("\0", "its address")
