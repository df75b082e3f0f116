"""`factoryctl sched tick` as cron runs it: what a pass changed, and nothing at all when it changed nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def test_a_pass_prints_what_it_changed_and_nothing_when_nothing_changed(tmp_path: Path, cli: Any) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: st\nstate_dir: {tmp_path / 'state'}\nnodes:\n  s1: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"
    )
    config = ("--config", str(path))
    assert cli(*config, "telemetry", "collect", "--once").exit_code == 0
    quiet = cli(*config, "-q", "sched", "tick")
    assert (quiet.exit_code, quiet.stdout, quiet.stderr) == (0, "", "")  # cron mails nothing
    assert cli(*config, "sched", "tick", "-o", "json").json()["items"] == []
    submitted = cli(
        *config, "-q", "jobs", "submit", "--gpus", "2", "--", sys.executable, "-c", "import time; time.sleep(30)"
    )
    job_id = submitted.stdout.strip()
    first = cli(*config, "sched", "tick")
    assert first.exit_code == 0, first.stderr
    assert first.stdout.splitlines()[0].split() == ["JOB", "NAME", "WAS", "STATE", "REASON"]
    assert first.stdout.splitlines()[1].split()[:4] == [job_id, job_id, "PENDING", "RUNNING"]
    assert first.stderr == "0 jobs waiting\n"
    again = cli(*config, "sched", "tick")  # the gang's ranks brought up to date only: no row
    assert (again.exit_code, again.stdout) == (0, "")
    assert cli(*config, "-q", "jobs", "cancel", job_id).exit_code == 0
