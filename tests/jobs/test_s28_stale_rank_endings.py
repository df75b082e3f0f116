"""`jobs show` says how each rank of an ended gang ended, also the ranks killed after a peer failed.

An exit status a signal gave is said as the signal (`killed by SIGTERM (exit 143)`). The pass that sees a rank fail
records the gang's end with the other ranks still running, then stops them: the store never learns how they ended,
and `jobs show` printed `-` for them, as for a rank that never started; it says `stopped with its gang`, without
asking their nodes (a store command). Real agents on the simulated driver over the local transport, a real store,
real rank processes; waits on the job's state, never on time.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.cli.jobs_rank_endings import ending_text
from factoryctl.config import load_config
from factoryctl.jobs.tick import run_tick
from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.store.sqlite import Store

#: Rank 1 fails at once; rank 0 sleeps until the gang's stop kills it (SIGTERM: no handler, so it dies of it).
FAILS_AT_ONCE = "import os, sys, time\nsys.exit(3) if os.environ['RANK'] == '1' else time.sleep(300)"


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (0, "exit 0"),
        (3, "exit 3"),
        (128, "exit 128"),
        (137, "killed by SIGKILL (exit 137)"),
        (143, "killed by SIGTERM (exit 143)"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (255, "exit 255"),
    ],
    ids=["zero", "three", "128", "137", "143", "minus-9", "minus-15", "255"],
)
def test_an_exit_status_is_said_as_the_signal_it_stands_for(code: int, said: str) -> None:
    assert ending_text(code) == said


def test_the_rank_killed_after_its_peer_failed_shows_its_signal(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: re\nstate_dir: {tmp_path / 'state'}\nnodes:\n  a[1-2]: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"
    )
    assert cli("--config", str(path), "telemetry", "collect", "--once").exit_code == 0
    config = load_config(path)
    store = Store(config.store_path)
    try:
        spec = JobSpec(4, name="pair", user="ana", command=(sys.executable, "-c", FAILS_AT_ONCE))
        store.add_job(Job("pf", spec, time.time()))

        def failed() -> bool:
            run_tick(config, store, max_restarts=0)
            return store.job("pf").state is JobState.FAILED  # type: ignore[union-attr]

        wait_for(failed, what="pf failed", poll_s=0.2)
        stored = store.job("pf")
    finally:
        store.close()
    assert stored is not None
    assert [r.exit_code for r in stored.ranks] == [None, 3]  # what the store knows: rank 0 was killed after
    shown = cli("--config", str(path), "jobs", "show", "pf")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.splitlines()[-2:] == [
        "  0: a1  gpus 0-1  pid " + str(stored.ranks[0].pid) + "  stopped with its gang",
        "  1: a2  gpus 0-1  pid " + str(stored.ranks[1].pid) + "  exit 3",
    ]
    document = cli("--config", str(path), "jobs", "show", "pf", "-o", "json").json()
    assert [r["exit_code"] for r in document["ranks"]] == [None, 3]  # unknown, not invented
