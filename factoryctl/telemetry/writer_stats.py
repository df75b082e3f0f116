"""The store writer's figures: what it stored, duplicated, dropped and thinned, and how late samples reached the store.

The benchmarks and `controller status` report these (`StoreWriter.stats`). Counters only grow; the latencies of the
samples stored are kept with the wall-clock time they were stored at, so the percentiles are over the last
`LATENCY_WINDOW_S`. A step of the wall clock moves those times with it, or a step back would keep a minute of
latencies for a day. Each batch stored drops the latencies that have left the window: kept until `LATENCIES_KEPT`,
an hour at 27 nodes grew the controller by 9 MB and made `report` sort 100,000 of them.

Not locked: the writer adds latencies and moves them under its own lock (a clock step is noticed on a link's thread).
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Any

from factoryctl.model.telemetry import NodeSample

LATENCY_WINDOW_S = 60.0
#: The most latencies kept (a minute of 1,600 nodes at 1 Hz); older than the window, none is.
LATENCIES_KEPT = 100_000
#: The counters `report` gives, in order ("dropped" adds the thinned samples).
REPORTED = ("samples", "rows", "duplicates", "dropped", "thinned", "store_errors", "link_failures")


class WriterStats:
    """Counters of the writer's work and the sample-to-store latencies behind its percentiles."""

    def __init__(self) -> None:
        """Start with every counter at zero and no latency."""
        self.counters = collections.Counter[str]()
        #: (stored at, seconds from the sample's time to then), oldest first.
        self.latencies: collections.deque[tuple[float, float]] = collections.deque(maxlen=LATENCIES_KEPT)

    def written(self, batch: Sequence[tuple[NodeSample, bool]], inserted: int, done: float) -> None:
        """The store took `batch` at `done` (`inserted` raw rows of it new); call with the writer's lock."""
        latencies = self.latencies
        latencies.extend((done, done - s.time) for s, _ in batch)
        horizon = done - LATENCY_WINDOW_S
        while latencies and latencies[0][0] < horizon:  # oldest first: those out of the window go from the left
            latencies.popleft()
        rows = sum(len(s.gpus) for s, _ in batch)
        self.counters["samples"] += len(batch)
        self.counters["rows"] += inserted
        self.counters["duplicates"] += rows - inserted

    def clock_stepped(self, step: float) -> None:
        """The wall clock jumped `step` seconds: move the latencies' times with it (call with the writer's lock)."""
        self.latencies = collections.deque(((t + step, late) for t, late in self.latencies), maxlen=LATENCIES_KEPT)
        self.counters["clock_steps"] += 1

    def report(
        self, latencies: list[tuple[float, float]], now: float, pending: int, store_error: str | None
    ) -> dict[str, Any]:
        """The counters, and percentiles (seconds) of `latencies` (a copy of them) over the window before `now`."""
        horizon = now - LATENCY_WINDOW_S
        lat = sorted(latency for at, latency in latencies if at >= horizon)

        def pct(q: float) -> float | None:
            return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

        return {
            **{name: self.counters[name] for name in REPORTED},
            "dropped": self.counters["dropped"] + self.counters["thinned"],
            "pending": pending,
            "latency_p50_s": pct(0.50),
            "latency_p99_s": pct(0.99),
            "store_error": store_error,
        }
