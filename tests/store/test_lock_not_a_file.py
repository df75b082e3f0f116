"""A controller lock that is a FIFO (or a link) is no lock: readers say so instead of hanging in open().

`controller_pid` opened `<state_dir>/controller.lock` with a plain open(): on a FIFO that blocks until a writer
comes, so `controller status`, `gpus` (once a store exists) and the dashboard's start hung forever, while
`controller run` refused the same FIFO at once. It is now opened as `ControllerLock.acquire` opens it (no link
followed, without blocking, a regular file only): `controller status` says what is wrong with the file and how to
fix it, readers that only ask whether a controller runs take it as none, and a controller refuses it with the same
sentence. A real FIFO; every read runs in a child process or a thread with a time limit, so a regression fails
instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_process import run_cli_text

from factoryctl.config import load_config
from factoryctl.store.lock import ControllerLock, LockUnusable, controller_is_running, controller_pid, lock_path

#: How long a read may take before it counts as hung (each takes well under a second).
HUNG_AFTER_S = 60
NOT_A_FILE = "is not a regular file (a FIFO, a socket or a directory): no controller can hold it."


def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n"
        "  w[1-2]: {transport: local, sim: {profile: a100-sxm4-80gb, seed: 7, gpus: 1}}\n"
    )
    return path


@pytest.fixture
def fifo_lock(tmp_path: Path) -> Iterator[Path]:
    """A state directory whose controller.lock is a FIFO; a reader still blocked in it is let go at the end."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.mkfifo(lock_path(state), 0o600)
    yield state
    with contextlib.suppress(OSError):  # without the fix a reader's open() waits for a writer: be it, so it ends
        os.close(os.open(lock_path(state), os.O_WRONLY | os.O_NONBLOCK))


def within_limit(read: Callable[[], object]) -> object:
    """What `read()` returns (or raises) in a thread, failing the test if it has not returned in HUNG_AFTER_S."""
    outcome: list[object] = []

    def reader() -> None:
        try:
            outcome.append(read())
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(HUNG_AFTER_S)
    assert not thread.is_alive(), "the read of a FIFO lock hung"
    return outcome[0]


def test_readers_take_a_fifo_lock_as_no_controller(fifo_lock: Path) -> None:
    refused = within_limit(lambda: controller_pid(fifo_lock))
    assert isinstance(refused, LockUnusable)
    assert isinstance(refused, OSError)  # the dashboard's and metrics' "no lock anyone can see"
    assert refused.message == f"the controller lock {lock_path(fifo_lock)} {NOT_A_FILE}"
    assert within_limit(lambda: controller_is_running(fifo_lock)) is False


def test_the_dashboard_finds_no_controller(fifo_lock: Path, tmp_path: Path) -> None:
    from factoryctl.live.services_store import controller_view

    view = within_limit(lambda: controller_view(load_config(factory(tmp_path))))
    assert getattr(view, "pid", "no view") is None, view


def test_a_controller_refuses_it_with_the_same_sentence(fifo_lock: Path) -> None:
    lock = ControllerLock(fifo_lock)
    refused = within_limit(lock.acquire)
    assert isinstance(refused, LockUnusable)
    assert refused.message == f"the controller lock {lock_path(fifo_lock)} {NOT_A_FILE}"


def test_controller_status_and_gpus_answer_over_a_fifo_lock(tmp_path: Path) -> None:
    config = str(factory(tmp_path))
    collected = run_cli_text("-c", config, "telemetry", "collect", "--once", timeout=HUNG_AFTER_S)
    assert collected.returncode == 0, collected.stderr  # a store exists: `gpus` asks whether a controller writes it
    os.mkfifo(lock_path(tmp_path / "state"), 0o600)
    status = run_cli_text("-c", config, "controller", "status", timeout=HUNG_AFTER_S)
    lock = lock_path(tmp_path / "state")
    assert status.returncode == 1
    assert status.stderr.splitlines() == [
        f"factoryctl: the controller lock {lock} {NOT_A_FILE}",
        f"hint: move it aside (`mv {lock} {lock}.aside`); the controller creates the lock file itself.",
    ]
    json_status = run_cli_text("-c", config, "controller", "status", "-o", "json", timeout=HUNG_AFTER_S)
    doc = json.loads(json_status.stdout)  # the figures are still printed, with what is wrong
    assert (doc["running"], doc["problem"]) == (False, f"the controller lock {lock} {NOT_A_FILE}")
    assert doc["newest_sample"] is not None
    assert json_status.returncode == 1
    gpus = run_cli_text("-c", config, "gpus", "-o", "json", timeout=HUNG_AFTER_S)
    assert gpus.returncode == 0, gpus.stderr  # no controller: read from the nodes themselves
    assert "NVIDIA A100-SXM4-80GB" in gpus.stdout
