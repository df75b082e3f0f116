"""A Ctrl-C while an output file (such as `controller`'s `--schedule-out`) is being opened leaves no temporary file.

The output file is written beside its target and renamed at the end; SIGINT arriving between creating that
temporary file and handing it over would skip the clean-up that drops it.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from factoryctl.cli.outfile import OutFile, open_out_file, removed_on_failure


def test_ctrl_c_while_the_output_file_opens_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "schedule.json"
    target.write_text("old\n")

    def open_then_interrupted() -> OutFile:
        out = open_out_file(target, "--schedule-out", "the schedule", [])
        signal.raise_signal(signal.SIGINT)  # Ctrl-C after the temporary file exists, before it is handed over
        return out

    with pytest.raises(KeyboardInterrupt), removed_on_failure(open_then_interrupted):
        pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["schedule.json"]
    assert target.read_text() == "old\n"
