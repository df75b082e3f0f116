"""`--schedule-out` on an existing file in a directory that takes no new file at all (/proc): the error says so.

The schedule is written to a temporary file beside its target and renamed over it; /proc refuses that file with
ENOENT, which was reported as if the target itself were missing ("/proc/version: No such file or directory").
"""

from __future__ import annotations

import os
from pathlib import Path

TRACE = "job_id,submit_time_s,duration_s,num_gpus\na,0,10,1\n"


def test_a_directory_refusing_new_files_is_named_not_the_file(cli, tmp_path: Path) -> None:
    trace = tmp_path / "trace.csv"
    trace.write_text(TRACE, encoding="utf-8")
    result = cli("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--schedule-out", "/proc/version")
    assert result.exit_code == 2, result.stderr
    first = result.stderr.splitlines()[0]
    if os.access("/proc/version", os.W_OK):  # root: the file may be written, the directory takes no new file
        assert first == (
            "factoryctl: cannot write schedule /proc/version: cannot create a temporary file beside it in /proc"
            " (No such file or directory)."
        )
    else:
        assert first == "factoryctl: cannot write schedule /proc/version: Permission denied."
    assert result.stdout == ""
