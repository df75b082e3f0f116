"""A stopped command whose workers still run ends at once, once its exit handlers ran (`process_exit.end_stopped`).

Fresh-clone CI saw `nodes` stopped by SIGTERM while a worker waited on a mute node print the right sentence and then
abort (SIGABRT, "FATAL: exception not rethrown"): the interpreter's teardown ended that worker with pthread_exit. A
stopped command's output is complete by then, so it leaves with its status; any other exit goes on as before.
"""

from __future__ import annotations

import threading

import pytest

from factoryctl.cli import process_exit


class Left(Exception):
    pass


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []

    def leave(status: int) -> None:
        seen.append(status)
        raise Left

    monkeypatch.setattr(process_exit.os, "_exit", leave)
    return seen


@pytest.fixture
def worker() -> object:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


@pytest.mark.parametrize("status", [129, 130, 143])
def test_a_stopped_command_with_a_worker_left_ends_at_once(exits: list[int], worker: object, status: int) -> None:
    with pytest.raises(Left):
        process_exit.end_stopped([status])
    assert exits == [status]


@pytest.mark.parametrize("decided", [[], [0], [1], [4], [124]])
def test_any_other_exit_goes_on_through_the_interpreter(exits: list[int], worker: object, decided: list[int]) -> None:
    process_exit.end_stopped(decided)
    assert exits == []
