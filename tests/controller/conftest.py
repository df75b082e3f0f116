"""Controller tests may use the real sshd fixture (tests/sshd_fixture.py) for SSH faults."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sshd_fixture import SshdServer, sshd_factory  # noqa: F401

from factoryctl.store.lock import ControllerLock


@pytest.fixture
def lock_held(tmp_path: Path) -> Iterator[tuple[Path, Path, ControllerLock]]:
    """factory.yaml (one local node, 1 s interval), its state_dir, and its controller lock held by this process.

    What `controller status` sees of a controller that runs, without running one.
    """
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {state}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 1}}\n")
    lock = ControllerLock(state)
    lock.acquire()
    try:
        yield config, state, lock
    finally:
        lock.release()
