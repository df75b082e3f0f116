"""Local agents start a few at a time per CPU, so a start's timeout measures the node, not our own crowd.

A local node's agent is a Python process on this machine: 64 started at once on 2 cores took more than 5 s each to
say hello, and `nodes --timeout 5` reported 52 healthy nodes timed out (with `--fanout 8`, only the 3 hung ones).
Here the CLI runs pinned to one CPU, over nodes whose `python:` never says hello; each records, as it starts, how
many of them are starting at that moment. Counted, not timed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.transport import local

NODES = 12
#: The CLI, pinned to one CPU (the first this test may use), in the same process.
ON_ONE_CPU = """import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
from factoryctl.cli.entry import main
sys.argv[0] = "factoryctl"
main()
"""
#: A node's `python:` that never says hello: it notes how many such starts are alive (itself included), then waits.
HUNG_PYTHON = """#!/bin/sh
dir={dir}
touch "$dir/$$"
alive=0
for marker in "$dir"/*; do kill -0 "${{marker##*/}}" 2>/dev/null && alive=$((alive + 1)); done
echo "$alive" >> {dir}.log
exec sleep 120
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_local_agents_start_at_most_a_few_per_cpu_at_once(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    starts.mkdir()
    python = tmp_path / "hung-python"
    python.write_text(HUNG_PYTHON.format(dir=starts))
    python.chmod(0o755)
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        f"  n[01-{NODES}]: {{transport: local, sim: h100-sxm, gpus: 1, python: {python}}}\n"
    )
    listed = subprocess.run(
        [sys.executable, "-c", ON_ONE_CPU, "-c", str(config), "nodes", "--timeout", "1", "-f", str(NODES)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert listed.returncode == 124, listed.stderr  # every node timed out, as it should
    assert f"n[01-{NODES}] ({NODES}): the agent did not say hello within 1 s" in listed.stderr
    counts = [int(line) for line in Path(f"{starts}.log").read_text().split()]
    assert len(counts) == NODES
    assert max(counts) <= local._STARTS_PER_CPU  # one CPU: that many at once, never the whole fan-out
