"""How a power-limit request tells its user how it goes, while it goes: its progress, and what a stop waits for.

48 nodes took 7 s with nothing on the screen, where `nodes` and `gpus` show `asking the nodes: 42% ...`; Ctrl-C with a
hung node then waited 5 s with no word. The request says its steps and what it waits for to a `LimitProgress` (the
CLI's progress line and notes); the dashboard's cap gives none. A stop waits only for the nodes asked (`settled`):
one whose session was still opening kept Ctrl-C 5 s, as if its limits might be changing, though none was asked.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from factoryctl.errors import NodeError
from factoryctl.model.folding import fold_nodes
from factoryctl.model.inventory import NodeSpec
from factoryctl.signal_wake import Wake
from factoryctl.transport.fanout import FanOut, Pending

#: What a node's change answered (`limits._NodeChanges`).
T = TypeVar("T")

#: The steps of a request, as its progress names them: every node read for the checks, then changed.
READING, CHANGING, RESETTING = "reading the nodes' GPUs", "changing the limits", "resetting the limits"


@dataclass(frozen=True)
class LimitProgress:
    """Who hears how a request goes, while it goes; both optional (the dashboard's cap has neither).

    `step(name, done, total)`: how many of a step's nodes are done (the CLI's progress line on a terminal: 48 nodes
    took 7 s with nothing on the screen). `note(sentence)`: a line to say at once (what an interrupted request still
    waits for: a hung node kept it 5 s with no word).
    """

    step: Callable[[str, int, int], None] | None = None
    note: Callable[[str], None] | None = None

    def of(self, name: str, before: int = 0, total: int | None = None) -> Callable[[int, int], None] | None:
        """A fan-out's progress in step `name`: its nodes counted after `before` done, of `total` (else its own)."""
        step = self.step
        if step is None:
            return None
        return lambda done, of: step(name, before + done, of if total is None else total)


def waiting_for(running: Sequence[str], within: float, cause: BaseException) -> str:
    """What an interrupted request waits for: `waiting up to 5 s for n08 to answer: its limits may be changing`."""
    names = fold_nodes(running) if len(running) == 1 else f"{fold_nodes(running)} ({len(running)} nodes)"
    whose = "its limits" if len(running) == 1 else "their limits"
    again = "; Ctrl-C again stops the wait" if isinstance(cause, KeyboardInterrupt) else ""
    return f"waiting up to {within:g} s for {names} to answer: {whose} may be changing{again}."


def settled(
    pool: FanOut[T],
    within: float,
    cause: BaseException,
    told: LimitProgress,
    answers: Mapping[str, T],
    asked: Callable[[str], bool] = lambda _node: True,
) -> list[tuple[NodeSpec, T | NodeError | Pending]]:
    """After an interrupt (`cause`), each node's outcome once those `asked` have answered (at most `within` s).

    When some have not, `told` hears which, and for how long they are waited for. A node that answered is its
    answer (`answers`), even while its session still closes. One still connecting (not `asked`; it never will be:
    `RequestTrail.stop_asking`) is not waited for, and is said as never started: its limits were not changed. A
    second interrupt ends the wait, keeping what is known.
    """

    def awaited(node: str) -> bool:
        return node not in answers and asked(node)

    given = Wake()
    given.set()  # the interrupt came: the settle waits only while a node `awaited` still runs
    try:
        waited = [node.name for node, state in pool.settle(0) if state is Pending.RUNNING and awaited(node.name)]
        if waited and within > 0 and told.note is not None:
            told.note(waiting_for(waited, within, cause))
        outcomes = pool.settle(within, given, awaited)
    except BaseException:
        outcomes = pool.settle(0)
    return [(node, _where(node.name, state, answers, asked)) for node, state in outcomes]


def _where(
    node: str, state: T | NodeError | Pending, answers: Mapping[str, T], asked: Callable[[str], bool]
) -> T | NodeError | Pending:
    """A node's outcome as `settled` says it: its answer, else where it is (still connecting: never started)."""
    if state is not Pending.RUNNING:
        return state
    if node in answers:
        return answers[node]
    return Pending.RUNNING if asked(node) else Pending.NOT_STARTED
