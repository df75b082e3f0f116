"""A controller killed by a fatal signal says so in its log: SIGBUS when its store's `-shm` is made immutable.

SQLite maps `factory.db-shm` (the WAL index) into memory and writes it there; `chattr +i` on it makes the next such
write fault, and the controller died with SIGBUS (exit 135) without a line in its log nor a `controller_stop` event.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from waiting import wait_for

pytestmark = pytest.mark.slow


def immutable(path: Path, on: bool) -> bool:
    """`chattr +i` (or -i) on `path`; False where it cannot be done (not root, a file system without it)."""
    if shutil.which("chattr") is None:
        return False
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


@pytest.fixture
def shm(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "state" / "factory.db-shm"
    yield path
    if path.exists():
        immutable(path, False)  # else pytest cannot remove tmp_path


def test_sigbus_on_an_immutable_shm_leaves_a_line_in_the_log(tmp_path: Path, shm: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local, sim: h100-sxm, gpus: 1}}}}\n"
        "controller: {interval_s: 0.5}\n"
    )
    log = tmp_path / "controller.log"
    argv = [*CLI_ARGV, "--config", str(config)]
    with log.open("wb") as err:
        proc = subprocess.Popen([*argv, "controller", "run"], stderr=err)
    try:
        wait_for(lambda: "n1 is up" in log.read_text(), what="n1 up")
        if not immutable(shm, True):
            pytest.skip("chattr +i is not possible here (not root, or the file system lacks it)")
        assert proc.wait(30) == -signal.SIGBUS
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text()
    assert "Fatal Python error: Bus error" in text
    assert "factoryctl/store/" in text  # the thread it hit was writing the store
