"""How a power-limit request tells its user how it goes, while it goes: its progress, and what a stop waits for.

48 nodes took 7 s with nothing on the screen, where `nodes` and `gpus` show `asking the nodes: 42% ...`; Ctrl-C with a
hung node then waited 5 s with no word. The request says its steps and what it waits for to a `LimitProgress` (the
CLI's progress line and notes); the dashboard's cap gives none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factoryctl.model.folding import fold_nodes

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
