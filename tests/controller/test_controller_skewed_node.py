"""A node whose clock is five minutes behind still has its samples stored, on the controller's clock.

Its samples carried its own time, so the writer took every one for older than its 120 s buffer and dropped it,
silently, while the node stayed `up` with its figures frozen. Here the node is a real local agent on a simulated GPU
whose Python reads a wall clock set 300 s back (a sitecustomize, as a wrong RTC would).
"""

from __future__ import annotations

import stat
import sys
import threading
import time
from pathlib import Path

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.sqlite import Store, StoreError

pytestmark = pytest.mark.slow

BEHIND_S = 300.0


def skewed_python(tmp_path: Path) -> Path:
    """A python3 for the node whose time.time() is BEHIND_S seconds behind."""
    site = tmp_path / "skew"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        f"import time\n_real = time.time\ntime.time = lambda: _real() - {BEHIND_S}\n"
    )
    wrapper = tmp_path / "python-behind"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH={site} exec {sys.executable} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def newest_of(store_path: Path, node: str) -> float | None:
    if not store_path.exists():
        return None
    try:
        store = Store(store_path, readonly=True)
    except StoreError:
        return None
    try:
        latest = {state.node: sample for state, sample in store.latest()}
    finally:
        store.close()
    sample = latest.get(node)
    return sample.time if sample is not None else None


def test_samples_of_a_node_whose_clock_is_behind_are_stored_on_the_controller_clock(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: skew\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  ok: {transport: local, sim: h100-sxm, gpus: 1}\n"
        f"  late: {{transport: local, python: {skewed_python(tmp_path)}, sim: h100-sxm, gpus: 1}}\n"
        "controller:\n  interval_s: 0.5\n"
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    store_path = tmp_path / "state" / "factory.db"
    try:
        wait_for(lambda: newest_of(store_path, "late") is not None, 60)
        newest = newest_of(store_path, "late")
        assert newest is not None
        assert abs(newest - time.time()) < 60  # the controller's time, not five minutes back
    finally:
        controller.request_stop()
        runner.join(30)
