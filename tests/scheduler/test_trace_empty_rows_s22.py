"""A spreadsheet's empty rows (`,,,`) are empty lines, not jobs with an empty job_id.

LibreOffice and Excel write a row the user cleared, or the rows below the data they once held, as commas only.
Refusing those as `job_id is empty` made a user hunt for a job that is not there.
"""

from __future__ import annotations

import pytest

from factoryctl.errors import UsageError
from factoryctl.scheduler.trace import parse_trace

HEADER = "job_id,submit_time_s,duration_s,num_gpus"


def test_rows_of_commas_are_skipped_wherever_they_are() -> None:
    lines = [HEADER, "a,0,10,1", ",,,", " , ,\t, ", "b,0,10,1", ",,,", ","]
    assert [job.job_id for job in parse_trace(lines, source="t.csv")] == ["a", "b"]


def test_a_row_of_commas_still_counts_as_a_line_in_messages() -> None:
    with pytest.raises(UsageError) as refused:
        parse_trace([HEADER, ",,,", "a,0,-1,1"], source="t.csv")
    assert refused.value.message.startswith("t.csv:3: ")


def test_a_row_with_any_field_filled_is_still_a_row() -> None:
    with pytest.raises(UsageError) as refused:
        parse_trace([HEADER, "a,0,10,1", ",0,,"], source="t.csv")
    assert refused.value.message == "t.csv:3: job_id is empty"


def test_only_rows_of_commas_is_a_trace_with_no_jobs() -> None:
    with pytest.raises(UsageError) as refused:
        parse_trace([HEADER, ",,,", ",,,"], source="t.csv")
    assert refused.value.message == "t.csv: the trace has no jobs, only a header"
