"""Jobs by a user who is not root: the job is theirs whatever `$USER` says, and `--force` does not make them root.

Run end to end as a non-root user (nobody under setpriv when the tests run as root; tests/nonroot.py). `$USER` and
`$LOGNAME` are set to `root` on purpose: the submitting user is the process's effective user, or anyone could submit
jobs in root's name and cancel root's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from nonroot import NOBODY, as_non_root, give_to_non_root, needs_non_root, non_root_directory

from factoryctl.model.jobs import Job, JobSpec, JobState
from factoryctl.store.sqlite import Store

pytestmark = needs_non_root

FACTORY = """\
name: lab
state_dir: {state}
nodes:
  n1: {{transport: local, sim: {{profile: h100-sxm, gpus: 4, seed: 3}}}}
"""


@pytest.fixture
def home() -> Iterator[Path]:
    with non_root_directory() as path:
        yield path


def factoryctl(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI run as a user who is not root who says, in its environment, that it is root."""
    config = home / "factory.yaml"
    if not config.exists():
        config.write_text(FACTORY.format(state=home / "state"))
        give_to_non_root(config)
    env = {**os.environ, "HOME": str(home), "USER": "root", "LOGNAME": "root", "PYTHONDONTWRITEBYTECODE": "1"}
    env["XDG_CACHE_HOME"] = str(home / ".cache")
    argv = as_non_root([*CLI_ARGV, "--config", str(config), *args])
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=home, timeout=120, check=False)


def test_a_non_root_user_submits_as_themselves_and_cannot_force_a_cancel(home: Path, tmp_path: Path) -> None:
    me = pwd.getpwuid(NOBODY if os.geteuid() == 0 else os.geteuid()).pw_name
    store = Store(tmp_path / "factory.db")  # the other user's job, in a store then given to the non-root user
    try:
        store.add_job(Job("r2", JobSpec(1, user="someone-else", command=("true",)), 0.0))
    finally:
        store.close()
    (home / "state").mkdir(mode=0o700)
    shutil.copyfile(tmp_path / "factory.db", home / "state" / "factory.db")
    give_to_non_root(home / "state", home / "state" / "factory.db")
    submitted = factoryctl(home, "jobs", "submit", "--gpus", "2", "-o", "json", "true")
    assert submitted.returncode == 0, submitted.stderr
    assert '"user": "' + me + '"' in submitted.stdout
    refused = factoryctl(home, "jobs", "cancel", "--force", "r2")
    assert refused.returncode == 2, refused.stderr
    assert "needs root" in refused.stderr
    mine = factoryctl(home, "jobs", "cancel", submitted.stdout.split('"id": "')[1].split('"')[0])
    assert mine.returncode == 0, mine.stderr
    store = Store(home / "state" / "factory.db", readonly=True)
    try:
        assert {j.id: j.state for j in store.jobs()}["r2"] is JobState.PENDING
    finally:
        store.close()
