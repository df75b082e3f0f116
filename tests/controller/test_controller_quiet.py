"""`factoryctl -q controller run` logs warnings and errors only, as -q drops notes and closing summaries everywhere.

It printed every INFO line and the closing figures. An explicit --log-level still wins.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from waiting import wait_for

from factoryctl.store.sqlite import Store, StoreError

pytestmark = pytest.mark.slow


def stored_samples(state: Path) -> int:
    try:
        store = Store(state / "factory.db", readonly=True)
    except StoreError:
        return 0
    try:
        return store.count_rows()["sample"]
    finally:
        store.close()


def run_briefly(tmp_path: Path, *options: str) -> str:
    """Run the controller with `options` (before and after `controller run`) until it stored samples; its stderr."""
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{n1: {{transport: local, sim: h100-sxm, gpus: 1}}}}\n")
    quiet = [o for o in options if o == "-q"]
    rest = [o for o in options if o != "-q"]
    argv = [*CLI_ARGV, *quiet, "--config", str(config)]
    log = tmp_path / "controller.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([*argv, "controller", "run", *rest], stderr=err)
    try:
        wait_for(lambda: stored_samples(tmp_path / "state") >= 2, what="two samples stored")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    return log.read_text()


def test_quiet_logs_nothing_while_all_is_well(tmp_path: Path) -> None:
    assert run_briefly(tmp_path, "-q") == ""


def test_an_explicit_log_level_wins_over_quiet(tmp_path: Path) -> None:
    log = run_briefly(tmp_path, "-q", "--log-level", "info")
    assert "INFO factoryctl.controller: controller" in log
    assert "controller stopped: {" in log
