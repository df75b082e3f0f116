"""What `jobs submit` says on stderr about how the job starts is what will start it.

It said `sched tick` starts the job without a controller; on a fresh factory it does not: a pass places jobs only on
nodes the store has heard from, so the first job waited after `sched tick` until a `telemetry collect --once`. Real
store, real CLI, the local transport.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def test_submit_says_what_starts_the_job_before_and_after_a_first_sample(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: fresh\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  ws: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n  gpu[01-02]: {gpus: 8}\n"
    )
    first = cli("--config", str(config), "jobs", "submit", "--gpus", "8", "--nodes", "ws", "--", "true")
    assert first.exit_code == 0, first.stderr
    assert first.stderr == (
        f"factoryctl: job {first.stdout.strip()} is PENDING; no controller runs, and the store has never heard from"
        " ws: run `factoryctl telemetry collect --once` then `factoryctl sched tick`, or `factoryctl controller run`,"
        " which does both.\n"
    )
    assert cli("--config", str(config), "-q", "telemetry", "collect", "--once", "ws").exit_code == 0
    heard = cli("--config", str(config), "jobs", "submit", "--gpus", "8", "--nodes", "ws", "--", "true")
    assert heard.stderr == (
        f"factoryctl: job {heard.stdout.strip()} is PENDING; no controller runs, so `factoryctl sched tick` starts it"
        " when its GPUs are free (run it from cron).\n"
    )
    anywhere = cli("--config", str(config), "jobs", "submit", "--gpus", "8", "--", "true")
    assert "the store has never heard from gpu[01-02]: run" in anywhere.stderr
