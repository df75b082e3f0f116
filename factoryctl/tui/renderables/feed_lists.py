"""The events and jobs panels' contents: newest events first; running gangs, then the queue, then jobs ended lately.

Both say plainly when they have nothing to show instead of drawing an empty box.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.text import Text

from factoryctl.live.services import DashboardEvent, JobLine
from factoryctl.model.timefmt import squeue_clock
from factoryctl.tui import text as fmt
from factoryctl.tui.renderables.palette import tone

#: The meaning of each event severity (renderables/palette.py gives its style).
SEVERITY_TONES = {"warning": "warn", "error": "alarm"}
#: The meaning of each job state (renderables/palette.py gives its style; a state not here is `secondary`).
JOB_STATE_TONES = {"RUNNING": "ok", "STARTING": "ok", "PENDING": "", "DEFERRED": "graph", "FAILED": "alarm"}


def event_message(event: DashboardEvent) -> str:
    """The event's words without its node's name, which the line already shows first.

    Messages are written to stand alone (in the store, `factoryctl events`), so many name their node:
    `demo01 drained by root: …`, `down: demo01: the agent exited.`, `demo01's clock is …` read `drained by root: …`,
    `down: the agent …`, `clock is …`; a GPU's own `demo01/2: uncorrectable ECC errors 1` reads `GPU 2: …`.
    """
    message, node = event.message, event.node
    if not node:
        return message
    gpu = re.match(rf"{re.escape(node)}/(\d+)([:\s])", message)
    if gpu:
        return f"GPU {gpu.group(1)}{gpu.group(2)}{message[gpu.end() :]}"
    for prefix in (f"{node}: ", f"{node} ", f"{node}'s "):  # `late1's clock is 120 s ahead …` (clock_skew)
        if message.startswith(prefix):
            message = message[len(prefix) :]
            break
    return message.replace(f": {node}: ", ": ")


def job_state_style(state: str) -> str:
    """A job state's style, from the palette (with colour or without)."""
    meaning = JOB_STATE_TONES.get(state, "secondary")
    return tone(meaning) if meaning else ""


class EventsRenderable:
    """Newest events first: time, node, what happened; a line too long for the panel wraps under its node's name.

    The newest errors stay in view (up to half the lines) when more newer events (warnings, nodes up) would push
    them out: the events between are left out, the errors shown where their time puts them, last.
    """

    def __init__(self, events: Sequence[DashboardEvent], limit: int = 50, node: str | None = None) -> None:
        self.events = [e for e in events if node is None or e.node == node or node in e.nodes]  # folded too
        #: At most this many lines (the panel's height): the events that do not fit whole are left out.
        self.limit = limit

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The newest events whole, as many as fit in `limit` lines.

        A line too long shortens its node's name (in the middle) before its words, then wraps what happened under
        the node's name, so a narrow panel (80 columns with the jobs beside it) still reads every word of it.
        """
        if not self.events:
            yield Text("no events yet", style=tone("secondary"))
            return
        newest = list(reversed(self.events))
        affixes = fmt.name_affixes([e.node for e in newest[: self.limit] if e.node])  # among names of a shape
        # the newest errors (a GPU lost, an XID) keep up to half the lines however many newer events came
        errors = {id(e) for e in [e for e in newest if e.severity == "error"][: max(1, self.limit // 2)]}
        used, full = 0, False
        for event in newest:
            is_error = id(event) in errors
            if full and not is_error:
                continue
            errors.discard(id(event))
            lines = self._event_lines(event, console, options.max_width, affixes.get(event.node or "", (0, 0)))
            room = self.limit - used
            if is_error and used and len(lines) > room:
                return
            if not is_error and len(lines) + len(errors) > room and (used or errors):  # a line per error to come
                if not errors:
                    return
                full = True  # no more room for older events but the errors kept
                continue
            used += len(lines)
            yield from lines

    @staticmethod
    def _event_lines(event: DashboardEvent, console: Console, width: int, affixes: tuple[int, int]) -> list[Text]:
        """One event: its time, then its node and words wrapped in the `width` left after the time."""
        when, message = fmt.clock(event.time), event_message(event)
        body = Text()
        if event.node:
            room = width - cell_len(when) - cell_len(message) - 2
            body.append(fmt.elide_name(event.node, max(room, fmt.NAME_MIN_WIDTH), affixes), style="bold")
            body.append(" ")
        body.append(message, style=tone(SEVERITY_TONES[event.severity]) if event.severity in SEVERITY_TONES else "")
        indent = cell_len(when) + 1
        wrapped = body.wrap(console, max(width - indent, fmt.NAME_MIN_WIDTH), no_wrap=False, overflow="fold")
        lines = []
        for index, part in enumerate(wrapped):
            line = Text(no_wrap=True, overflow="ellipsis")
            line.append(when if index == 0 else " " * len(when), style=tone("secondary"))
            line.append(" ")
            line.append_text(part)
            lines.append(line)
        return lines


#: The panel's order: running gangs, then the queue, then the jobs that ended (the snapshot's order within each).
JOB_ORDER = {"RUNNING": 0, "STARTING": 0, "PENDING": 1, "DEFERRED": 1}


class JobsRenderable:
    """Running gangs first, then the queue, then the jobs ended lately; a sentence when there is nothing to show.

    `running` and `waiting` count every such job (`FactorySnapshot.jobs_running`, `queue_length`): the snapshot holds
    only the first few of a long queue, and the last line says how many more there are (None: count the lines).
    """

    def __init__(
        self, jobs: Sequence[JobLine] | None, limit: int = 50, running: int | None = None, waiting: int | None = None
    ) -> None:
        self.jobs = jobs
        self.limit = limit
        self.running = running
        self.waiting = waiting

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """One cropped line per job, as many as fit; the last says how many running or waiting did not."""
        if self.jobs is None:
            yield Text("no scheduler data: this dashboard has no store to read jobs from", style=tone("secondary"))
            return
        if not self.jobs:
            yield Text("no jobs", style=tone("secondary"))
            return
        ordered = sorted(self.jobs, key=lambda j: JOB_ORDER.get(j.state, 2))
        shown = ordered[: self.limit]
        if any(self._not_shown(shown)) and len(shown) >= self.limit:  # the last line says how many instead
            shown = shown[: self.limit - 1]
        for job in shown:
            yield self._line(job)
        hidden = zip(self._not_shown(shown), ("running", "waiting"), strict=True)
        said = [f"{count:,} more {what}" for count, what in hidden if count > 0]
        if said:
            yield Text("… " + ", ".join(said), style=tone("secondary"), no_wrap=True, overflow="ellipsis")

    def _not_shown(self, shown: Sequence[JobLine]) -> tuple[int, int]:
        """How many running and waiting jobs `shown` leaves out: of those counted, else of the lines given."""
        jobs = self.jobs or ()
        given = [sum(1 for j in jobs if JOB_ORDER.get(j.state) == kind) for kind in (0, 1)]
        running = given[0] if self.running is None else self.running
        waiting = given[1] if self.waiting is None else self.waiting
        on = [sum(1 for j in shown if JOB_ORDER.get(j.state) == kind) for kind in (0, 1)]
        return max(0, running - on[0]), max(0, waiting - on[1])

    @staticmethod
    def _line(job: JobLine) -> Text:
        """`RUNNING   a1b2c3 train ana 16 GPUs 1:02:03 on n[01-02] (reason)`."""
        from factoryctl.model.folding import fold_nodes

        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f"{job.state:<9}", style=job_state_style(job.state))
        line.append(f" {job.id} ")
        line.append(job.name, style="bold")
        if job.user:
            line.append(f" {job.user}", style=tone("secondary"))
        line.append(f" {job.num_gpus} GPU{'' if job.num_gpus == 1 else 's'}")
        if job.elapsed_s is not None:
            line.append(f" {squeue_clock(job.elapsed_s)}")
        if job.nodes:
            line.append(f" on {fold_nodes(job.nodes)}", style=tone("secondary"))
        if job.reason:
            line.append(f" ({job.reason})", style=tone("secondary"))
        return line
