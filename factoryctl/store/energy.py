"""Joules used per GPU in a window, from the stored telemetry: the energy counter's steps, rollups before them.

Energy is the one read that cannot just average what is stored: the driver's counter is summed step by step, a
silence (the controller stopped, a node down) is billed by the gap rule rather than spread over, and the seam
between 1-minute rollups and raw rows must neither lose nor double a minute. Kept apart from `history.py`, whose
window seam (`_raw_from`) it shares, so each of the two reads stays small enough to read whole
(`factoryctl telemetry energy`, the dashboard's and the metrics endpoint's joules read through it).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from typing import Any

from factoryctl.store.coverage import covered_by_minute, held_for, held_ms
from factoryctl.store.history import HistoryQueries
from factoryctl.store.rows import to_ms
from factoryctl.store.samples import PRUNED_BELOW


class EnergyQueries(HistoryQueries):
    """Joules per GPU over a window (`energy`), on top of the history reads' seam between rollups and raw rows."""

    def energy(self, nodes: Sequence[str], since: float, until: float) -> list[tuple[str, int, float, str]]:
        """Joules used per GPU in the window: (node, gpu, joules, source).

        From the driver's energy counter where raw rows exist (its steps summed, so a reboot that resets the counter
        loses nothing but the step across it; a step across a silence by the gap rule, `_prorated`); from 1-minute
        mean power before the oldest raw row; from integrated power where the counter is not supported.
        """
        ids = self._known_node_ids(nodes)
        ever_pruned = self.get_meta(PRUNED_BELOW) is not None  # read once: whether any GPU's seam can have a lead-in
        out: list[tuple[str, int, float, str]] = []
        for name in nodes:
            node_id = ids.get(name)
            if node_id is None:
                continue
            for _, gpu in self._gpu_pairs([node_id]):
                out.append((name, gpu, *self._gpu_energy(node_id, gpu, to_ms(since), to_ms(until), ever_pruned)))
        return out

    def _gpu_energy(self, node_id: int, gpu: int, start: int, end: int, ever_pruned: bool) -> tuple[float, str]:
        """One GPU's joules in [start, end) ms and their source: rollups before the raw window, then raw rows.

        Where the window has raw rows, the rollups bill the whole minutes before the first raw row's minute (the
        seam), the time from there to that row is the reading before it held into the minute (`_lead_in`), and the
        raw rows bill the rest; without raw rows, the rollups bill the whole window, the minute the end falls in too.
        """
        raw_from = self._raw_from(node_id, gpu, start, end)
        seam = raw_from // 60000 * 60000 if raw_from < end else raw_from
        rolled = self._rollup_energy(node_id, gpu, start, seam) if start < seam else None
        # no raw row was ever pruned: the oldest is where the GPU started, with nothing held into its minute
        has_lead_in = ever_pruned and max(start, seam) < raw_from < end
        lead_in = self._lead_in(node_id, gpu, max(start, seam), raw_from) if has_lead_in else None
        raw, source = self._raw_energy(node_id, gpu, raw_from, end, edge_before=raw_from == start)
        from_rollups = None if rolled is None and lead_in is None else (rolled or 0.0) + (lead_in or 0.0)
        sources = [name for name in ("rollup" if from_rollups is not None else None, source) if name is not None]
        return (from_rollups or 0.0) + raw, "+".join(sources) or "none"

    def _lead_in(self, node_id: int, gpu: int, start: int, raw_from: int) -> float | None:
        """Joules in [start, raw_from) ms, before the oldest raw row in its minute: the reading before it held into it.

        That reading's rows are pruned, but its minute's rollup kept the time it covered (`coverage.covered_by_minute`
        bills a reading held past its minute's end to the next reading's minute): the first raw row's minute's time
        covered less what its own readings cover is that lead-in, billed at the minute's mean power, as it is once
        the minute's raw rows are pruned too. None: no lead-in in the window (or no rollup with its time covered).
        """
        minute = raw_from // 60000
        found = self._query(
            f"SELECT power_mw_mean, {'power_covered_ms' if self.schema_version >= 4 else 'NULL'} FROM rollup"
            " WHERE node_id = ? AND gpu = ? AND t_min = ? AND power_mw_mean IS NOT NULL",
            (node_id, gpu, minute),
        )
        if not found or found[0][1] is None:
            return None
        own = covered_by_minute(self._power_times(node_id, gpu, minute), minute, minute + 1).get(minute, 0)
        held_until = minute * 60000 + min(max(0, int(found[0][1]) - own), raw_from - minute * 60000)
        held_ms = held_until - max(start, minute * 60000)
        return held_ms / 1000 * float(found[0][0]) / 1000 if held_ms > 0 else None

    def _power_times(self, node_id: int, gpu: int, minute: int) -> list[int]:
        """The times (ms) of one GPU's power readings in `minute`, and of the two after it (for the gaps next to them)."""
        power = "SELECT t_ms FROM sample WHERE node_id = ? AND gpu = ? AND power_mw IS NOT NULL AND t_ms >= ?"
        inside = self._query(
            f"{power} AND t_ms < ? ORDER BY t_ms", (node_id, gpu, minute * 60000, (minute + 1) * 60000)
        )
        after = self._query(f"{power} ORDER BY t_ms LIMIT 2", (node_id, gpu, (minute + 1) * 60000))
        return [int(t) for (t,) in [*inside, *after]]

    def _rollup_energy(self, node_id: int, gpu: int, start: int, stop: int) -> float | None:
        """Joules in [start, stop) ms from the rollups' mean power (None: no minute's time covered reaches into it).

        Each minute counts for the time its samples covered, or a controller started at :31 would be billed the whole
        minute once its raw rows are pruned, where the counter billed 29 s: as the rollup stored it (schema 4 on,
        `coverage.covered_by_minute`), else its share inferred from its sample count (`_covered_share`) for the gap
        rule. Where every minute's time is known, summed exactly (`held_microjoules`): a month's report sums its
        price intervals' minutes in SQLite and gets the same joules to the bit. A window no minute's time reaches
        into (after the last minute, or inside a silence) has no reading, not 0 J.
        """
        first = -(-start // 60000)
        minutes = self._query(  # the last minute before the window too: its power may hold into the window
            f"{self._minutes_with_power} AND t_min < ? ORDER BY t_min DESC LIMIT 1",
            (node_id, gpu, first),
        )[::-1] + self._query(
            f"{self._minutes_with_power} AND t_min >= ? AND t_min < ? ORDER BY t_min",
            (node_id, gpu, first, -(-stop // 60000)),  # the minute `stop` falls in counts for its part before it
        )
        if not minutes:
            return None
        held = [
            (int(t) * 60_000, float(mw) * (1.0 if covered is not None else _covered_share(n, *around)))
            for t, mw, covered, n, *around in minutes
        ]
        covers = [None if covered is None else int(covered) for _, _, covered, *_ in minutes]
        return minutes_joules(held, covers, start, stop)

    @property
    def _minutes_with_power(self) -> str:
        """The query of one GPU's minutes with power, to be given bounds on `t_min`.

        Each row: the minute, its mean mW, the milliseconds its samples cover (NULL in a rollup made before schema
        4), its samples with power, and, where the time covered is NULL, those of the minutes just before and after
        (NULL where that minute has no rollup with power).
        """
        # power_mw_n is NULL in a rollup made before schema 2, and missing in a schema-1 store a reader opened; so is
        # power_covered_ms before schema 4
        count = "COALESCE({0}power_mw_n, {0}n)" if self.schema_version >= 2 else "{0}n"
        covered = "r.power_covered_ms" if self.schema_version >= 4 else "NULL"
        around = (
            f"CASE WHEN {covered} IS NULL THEN (SELECT {count.format('o.')} FROM rollup o WHERE o.node_id = r.node_id"
            " AND o.gpu = r.gpu AND o.t_min = r.t_min {0} 1 AND o.power_mw_mean IS NOT NULL) END"
        )
        return (
            f"SELECT t_min, power_mw_mean, {covered}, {count.format('r.')}, {around.format('-')},"
            f" {around.format('+')} FROM rollup r WHERE node_id = ? AND gpu = ? AND power_mw_mean IS NOT NULL"
        )

    def _raw_energy(
        self, node_id: int, gpu: int, raw_from: int, end: int, edge_before: bool
    ) -> tuple[float, str | None]:
        """Joules in [raw_from, end) ms from raw rows: the energy counter, else power (None: no power reading to bill).

        `edge_before`: the window starts inside the raw window, so the step from the reading before it counts too.
        """
        found = self._query(
            "SELECT t_ms, energy_mj, power_mw FROM sample WHERE node_id = ? AND gpu = ? AND t_ms >= ? AND t_ms < ?"
            " ORDER BY t_ms",
            (node_id, gpu, raw_from, end),
        )
        counters = [(t, e, p) for t, e, p in found if e is not None]
        powers = [(int(t), float(p)) for t, _, p in found if p is not None]
        if len(counters) >= 2:
            return self._counter_joules(node_id, gpu, counters, raw_from if edge_before else None, end), "counter"
        # A window shorter than the spacing holds one reading or none: the readings around it say what it drew, and
        # two on each side give the usual spacing (a window inside a silence is not billed the silence).
        around = 1 if len(powers) >= 2 else 2
        before = self._power_next(node_id, gpu, "<", raw_from, "DESC", around)[::-1] if edge_before else []
        after = self._power_next(node_id, gpu, ">=", end, "ASC", around)  # like the counter: the step across the end
        held = None
        if len(powers) >= 2 or (len(before + powers + after) >= 2 and (before or powers) and (powers or after)):
            held = _held_joules(before + powers + after, raw_from, end, floor_ms=1, hold_last=False)
        # a GPU lost all window has rows with no power, a window inside a silence no reading held into it: no
        # source, not "power" with 0 J
        return (0.0, None) if held is None else (held, "power")

    def _power_next(
        self, node_id: int, gpu: int, side: str, edge: int, order: str, count: int = 1
    ) -> list[tuple[int, float]]:
        """The `count` power readings (ms, milliwatts) nearest the window's `edge` outside it, nearest first.

        `side` is "<" (before the window's start) or ">=" (at or after its end).
        """
        found = self._query(
            f"SELECT t_ms, power_mw FROM sample WHERE node_id = ? AND gpu = ? AND t_ms {side} ?"
            f" AND power_mw IS NOT NULL ORDER BY t_ms {order} LIMIT ?",
            (node_id, gpu, edge, count),
        )
        return [(int(t), float(mw)) for t, mw in found]

    def _counter_joules(
        self, node_id: int, gpu: int, inside: Sequence[tuple[int, int, int | None]], start: int | None, end: int
    ) -> float:
        """Joules of the counter steps in the window, and of those across its start (when given) and end, prorated.

        Each step is billed by `_prorated`'s gap rule, inside the window and across its edges alike, so adjacent
        windows add up to the whole and a window reads the same once its raw rows are rolled up. Samples are seconds
        or minutes apart: a window from 10:02 with samples at 10:00 and 10:05 used 3/5 of that step, which summing
        the steps inside the window left out (an hour of 5-minute samples lost 8 %). Whether a step is a silence is
        judged by the gaps next to it (`held_ms`, as the rollups judge it): two readings either side of the window
        give those of the steps across its edges, so a cut window judges each step as the whole window does.
        """
        counter = "SELECT t_ms, energy_mj, power_mw FROM sample WHERE node_id = ? AND gpu = ? AND energy_mj IS NOT NULL"
        context = (node_id, gpu, inside[0][0]), (node_id, gpu, end)  # more than 2: `_in_counter_order` weighs runs
        before = self._query(f"{counter} AND t_ms < ? ORDER BY t_ms DESC LIMIT {_CONTEXT}", context[0])
        after = self._query(f"{counter} AND t_ms >= ? ORDER BY t_ms LIMIT {_CONTEXT}", context[1])
        readings = _in_counter_order([*before[::-1], *inside, *after])
        gaps = [int(b[0]) - int(a[0]) for a, b in itertools.pairwise(readings)]
        lo, joules = start if start is not None else inside[0][0], 0.0
        for index, (a, b) in enumerate(itertools.pairwise(readings)):  # steps outside the window bill nothing in it
            around = gaps[index - 1] if index else None, gaps[index + 1] if index + 1 < len(gaps) else None
            joules += _prorated(a, b, lo, end, held_ms(gaps[index], *around))
        return joules / 1000


#: Counter readings read on each side of a window: the steps across its edges, and runs for `_in_counter_order`.
_CONTEXT = 4
#: A reading below the ones before it is a reboot only if the counter could have risen to it since the reading before
#: (from zero: a driver reload) at this many times the power read on either side (a load between the readings).
_REBOOT_POWER_FACTOR = 3
#: The power (mW) assumed for that where neither reading has power: more than any GPU draws.
_REBOOT_POWER_MW = 2_000_000


def _in_counter_order(readings: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """The counter readings (time, millijoules, milliwatts) in time order, less those out of place: the counter's order.

    The counter never goes back but at a reboot (a driver reload: it restarts from zero), yet its readings can go back
    in time order: a wall-clock step (the controller's or a node's) stamps readings minutes off, and they interleave
    with those really taken then (203858 J, 349872 J, 206841 J). Each decrease was billed as a reboot (the whole later
    counter: a GPU's energy since its driver loaded, hundreds of kWh). So a reading below the highest of its run is a
    reboot only if the counter could have reached it from zero since the reading before (`_rebooted`) and the next
    readings do not come back up to that highest (a reading re-stamped among others); otherwise the readings of each
    run between reboots are cut to their longest non-decreasing sequence, which keeps the readings really taken
    then (the longer run: those before and after the re-stamped ones) and drops the others, so no step is billed
    twice and a counter in order is kept whole.
    """
    counters = [int(reading[1]) for reading in readings]
    if all(a <= b for a, b in itertools.pairwise(counters)):  # the usual case: in order, nothing to judge
        return list(readings)
    runs: list[list[Sequence[Any]]] = []
    top = 0  # the highest reading of the run so far
    for index, reading in enumerate(readings):
        if not runs or (int(reading[1]) < top and _rebooted(readings, index, top)):
            runs.append([reading])
            top = int(reading[1])
        else:
            runs[-1].append(reading)
            top = max(top, int(reading[1]))
    return [kept for run in runs for kept in _longest_rising(run)]


def _rebooted(readings: Sequence[Sequence[Any]], index: int, top: int) -> bool:
    """Whether the counter reading `index`, below `top` (its run's highest), is a reboot's: see `_in_counter_order`.

    From zero since the reading before, at up to `_REBOOT_POWER_FACTOR` times the power read on either side, and
    not back at `top` within the next two readings: a reading re-stamped among others is a whole counter (far more
    than a few seconds' energy) and the others around it are above it, a GPU rebooted again soon after a reboot
    starts again from zero all the same.
    """
    before, reading = readings[index - 1], readings[index]
    powers = [int(p) for p in (before[2], reading[2]) if p is not None]
    mw = _REBOOT_POWER_FACTOR * max(powers) if powers else _REBOOT_POWER_MW
    since_ms = max(0, int(reading[0]) - int(before[0]))
    returns = any(int(r[1]) >= top for r in readings[index + 1 : index + 3])
    return int(reading[1]) <= mw * since_ms / 1000 and not returns


def _longest_rising(run: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    """The longest sequence of `run`'s readings (in time order) whose counter never goes back, the lowest of ties."""
    tails: list[int] = []  # tails[k]: index of the lowest last counter of a sequence of k + 1 readings
    values: list[int] = []  # their counters
    back: list[int | None] = []
    for index, reading in enumerate(run):
        length = bisect.bisect_right(values, int(reading[1]))
        back.append(tails[length - 1] if length else None)
        tails[length : length + 1], values[length : length + 1] = [index], [int(reading[1])]
    kept: list[Sequence[Any]] = []
    at = tails[-1] if tails else None
    while at is not None:
        kept.append(run[at])
        at = back[at]
    return kept[::-1]


def _step(before: int, after: int) -> int:
    """A counter's increase between two readings (millijoules); a reset (reboot) counts from zero."""
    return after - before if after >= before else after


def _usual_spacing(times: Sequence[int], floor_ms: int) -> int:
    """The usual time between a GPU's readings (ms, in time order): their median gap, at least `floor_ms`."""
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    return max(floor_ms, gaps[len(gaps) // 2] if gaps else floor_ms)


def _prorated(a: Sequence[Any], b: Sequence[Any], lo: int, hi: int, held: int) -> float:
    """The millijoules of the counter step a -> b (time, millijoules, milliwatts or None) billed in [lo, hi) ms.

    The gap rule, for the counter as for rollups (`held`: `coverage.held_ms`, judged by the gaps next to the step):
    a step is spread over its gap, unless the gap is a silence; then `a`'s power is held for the usual spacing after
    it (the step's mean power where `a` has no power reading) and the rest is not billed. So the newest reading of a
    run counts for one more interval, as the rollups bill it once the raw rows are pruned, and a window's edge
    cutting the silence or not changes nothing: summing the steps inside a window whatever their gap billed a 40 s
    controller outage in full, a window cut inside it nothing (the two halves 34 % short of the whole).
    """
    gap = int(b[0]) - int(a[0])
    billed = min(hi, int(a[0]) + held) - max(lo, int(a[0]))
    if billed <= 0 or gap <= 0:
        return 0.0
    if held < gap and a[2] is not None:
        return float(a[2]) * billed / 1000
    return _step(int(a[1]), int(b[1])) * billed / gap


def _covered_share(count: int, before: int | None, after: int | None) -> float:
    """The share of its minute a rollup's `count` power samples covered, judged by the minutes next to it.

    For rollups made before schema 4, which keep how many samples they have, not the time they cover (nor the
    sampling interval): an inference, which a run shorter than a minute, or one over two partial minutes, fools (no
    full minute to compare with), and so does a change of interval. A full minute's count is taken from its
    neighbours (the smaller of the two, or the one there is; its own if larger). A minute with fewer (a controller
    started or stopped in it, a silence inside it) covered `count` of that many; a shortfall of up to a tenth
    (jitter, a missed sample) is a full minute. A minute alone (a cron sweep) counts whole, as the gap rule says.
    """
    neighbours = [n for n in (before, after) if n is not None]
    if not neighbours or count <= 0:
        return 1.0
    full = max(count, min(neighbours))
    return 1.0 if full - count <= max(1, full // 10) else count / full


def minutes_joules(
    minutes: Sequence[tuple[int, float]], covers: Sequence[int | None], start_ms: int, stop_ms: int
) -> float | None:
    """Joules in [start_ms, stop_ms) of rollup minutes (ms, mW held, in time order; `_rollup_energy` reads them).

    Exact where every minute's time covered is known and its mean a whole number of mW (`held_microjoules`); else
    by the gap rule, each minute's share inferred (`_held_joules`). None: no minute is held into the window.
    """
    known = [covered for covered in covers if covered is not None]
    if len(known) == len(covers) and all(mw.is_integer() for _, mw in minutes):
        microjoules = held_microjoules(minutes, known, start_ms, stop_ms)
        return None if microjoules is None else microjoules / 1_000_000
    return _held_joules(minutes, start_ms, stop_ms, floor_ms=60_000, hold_last=True, covers=covers)


def held_microjoules(
    minutes: Sequence[tuple[int, float]], covers: Sequence[int], start_ms: int, stop_ms: int
) -> int | None:
    """Microjoules (mW x ms) in [start_ms, stop_ms) of rollup minutes (ms, integral mW, in time order), `covers` known.

    `_held_joules` with every minute's time covered known, in integers: each minute held from its start for its time
    covered, up to the next minute at most (the last: up to the window's end), and what of that falls inside the
    window. Exact, so a window's microjoules are its pieces' summed in any order (`energy_rolled` sums the minutes of
    a month's price intervals in SQLite), and a window's joules (this over a million) are the same however it is read.
    None: no minute's time falls inside the window (no reading there, which is not 0 J).
    """
    total = held = 0
    for index, ((begin, mw), covered) in enumerate(zip(minutes, covers, strict=True)):
        following = minutes[index + 1][0] if index + 1 < len(minutes) else max(stop_ms, begin)
        end = begin + min(covered, following - begin)
        inside = max(0, min(end, stop_ms) - max(begin, start_ms))
        total += inside * int(mw)
        held += inside
    return total if held else None


def _held_joules(
    readings: Sequence[tuple[int, float]],
    start_ms: int,
    stop_ms: int,
    floor_ms: int,
    hold_last: bool,
    covers: Sequence[int | None] = (),
) -> float | None:
    """Joules in [start_ms, stop_ms) from power readings (ms, milliwatts, in time order), each held by `held_for`.

    Raw power readings (a GPU without an energy counter) and 1-minute mean power (rollups, `floor_ms` 60 s) alike:
    each counts until the next reading unless that gap is a silence; readings just outside the window count for
    what of their span falls inside. Only minutes with a sample have a rollup, so a GPU sampled every 5 minutes (a
    cron sweep) is billed for all 5; the last minute, a mean over the minute it starts, counts until the window's
    end by the same rule (`hold_last`). A raw reading is an instant: the last one counts for nothing after it, as
    the energy counter's last reading. `covers` (a rollup's time covered, None where unknown; one per reading or
    none) says how long a reading counts instead of the gap rule: up to the next reading at most. None: no reading
    counts for any time inside the window (it has no reading, not 0 J).
    """
    times = [t for t, _ in readings]
    usual = _usual_spacing(times, floor_ms)
    nexts = [*times[1:], max(stop_ms, times[-1]) if hold_last else times[-1]]
    joules, held = 0.0, 0
    for (begin, mw), following, covered in zip(readings, nexts, covers or [None] * len(readings), strict=True):
        span = min(covered, following - begin) if covered is not None else held_for(following - begin, usual)
        inside = max(0, min(begin + span, stop_ms) - max(begin, start_ms))
        joules += inside / 1000 * mw / 1000
        held += inside
    return joules if held else None
