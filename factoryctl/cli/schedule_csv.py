"""`sched simulate --schedule-out`: every policy's schedule as one CSV, written from the replay's record columns.

A replay of millions of jobs keeps its records in columns (`ScheduleRecords`); building a `JobRecord` for every
row, or a sort key tuple for every record, would cost more than the records themselves, so neither is made here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from factoryctl.scheduler.schedule_records import ScheduleRecords
    from factoryctl.scheduler.simulate import SimulationResult


def _number(value: float) -> str:
    """Seconds for the CSV: integers stay integers, other values keep full precision."""
    return str(int(value)) if value == int(value) else repr(value)


def schedule_csv(results: list[SimulationResult]) -> str:
    """The schedule as CSV (quoted where a job id needs it, as the trace was), UTF-8 on stdout too (`Utf8Text`).

    Each policy's rows are written from the record columns (`ScheduleRecords`) in `_schedule_order`, and its text
    taken out of the writer's buffer before the next policy's begins: no record object per row.
    """
    import csv
    import io

    from factoryctl.cli.render import Utf8Text
    from factoryctl.scheduler.schedule_records import as_columns

    parts = ["job_id,policy,submit_s,start_s,end_s,allocation\n"]
    for result in results:
        records = as_columns(result.records)
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        ids, submits, starts, ends = records.job_ids, records.submit_times, records.start_times, records.end_times
        for i in _schedule_order(records):
            allocation = " ".join(f"{node}:{gpus}" for node, gpus in records.allocation(i))
            writer.writerow(
                (ids[i], records.policy, _number(submits[i]), _number(starts[i]), _number(ends[i]), allocation)
            )
        parts.append(text.getvalue())
        del text, writer
    joined = "".join(parts)
    parts.clear()
    return Utf8Text(joined)


def _schedule_order(records: ScheduleRecords) -> list[int]:
    """The records' indices by submit time, then job id, then start (a job's run segments in turn).

    Sorted by submit time alone first, then each run of equal submit times by the rest: a key tuple per record
    would cost more than the records themselves.
    """
    ids, submits, starts = records.job_ids, records.submit_times, records.start_times
    order = sorted(range(len(records)), key=submits.__getitem__)
    begin = 0
    while begin < len(order):
        end, submit = begin + 1, submits[order[begin]]
        while end < len(order) and submits[order[end]] == submit:
            end += 1
        if end - begin > 1:
            order[begin:end] = sorted(order[begin:end], key=lambda i: (ids[i], starts[i]))
        begin = end
    return order
