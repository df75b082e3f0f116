"""`--follow` and `--watch` end when their reader does (`| head -2`), not at their next output, hours away maybe.

Real processes with real pipes: the reader closes its end after the first line, and the command must notice while it
waits (exit 141, nothing on stderr), as `tail -f | head` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from factory_yaml import write_factory

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


@pytest.mark.parametrize(
    "command",
    [["events", "--follow", "-o", "json"], ["gpus", "--watch", "--interval", "3600", "-o", "json"]],
    ids=["events-follow", "gpus-watch"],
)
def test_the_command_ends_with_141_once_its_reader_closes_the_pipe(
    isolated_home: Path, tmp_path: Path, command: list[str]
) -> None:
    config = write_factory(tmp_path, "n1: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)
    store = Store(tmp_path / "state" / "factory.db")
    store.add_events([Event(time.time() - 5, "node_up", "n1 is up", node="n1")])
    store.close()
    read_end, write_end = os.pipe()
    with subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "--config", str(config), *command],
        stdout=write_end,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    ) as proc:
        os.close(write_end)
        with os.fdopen(read_end, "rb") as reader:
            assert reader.readline()  # the first output arrived ...
        # ... and the reader is gone: no further event or refresh comes for an hour
        try:
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
        assert proc.stderr is not None
        assert (code, proc.stderr.read()) == (141, b"")
