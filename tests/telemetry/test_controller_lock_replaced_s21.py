"""A controller whose lock file was deleted or replaced exits 1 and records a `controller_stop` event saying why.

It wrote none: `factoryctl events` showed the controller start and nothing of its stop, though the store it wrote
was still the readers' one. The stop it records once it notices (up to 3 s later) may come after another controller
took the new lock and started: the next start must still see that one's own stop, or its lack, by its pid.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from fakefleet import FakeFleet, wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller, unclean_stop
from factoryctl.store.lock import ControllerLock, controller_is_running
from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store


def test_a_replaced_lock_stops_the_controller_with_an_event(tmp_path: Path, fleet: FakeFleet) -> None:
    path = tmp_path / "factory.yaml"
    state = tmp_path / "state"
    path.write_text(f"state_dir: {state}\nnodes: {{n1: {{transport: local}}}}\ncontroller: {{interval_s: 0.2}}\n")
    controller = Controller(load_config(path), connector=fleet.connector)
    status: list[int] = []
    runner = threading.Thread(target=lambda: status.append(controller.run()), daemon=True)
    runner.start()
    other = ControllerLock(state)  # the controller that takes over once the lock file is made anew
    try:
        wait_for(lambda: controller_is_running(state) and "n1" in fleet.procs)
        (state / "controller.lock").unlink()
        other.acquire()
        runner.join(30)
    finally:
        controller.request_stop()
        runner.join(20)
        other.release()
    assert status == [1]
    stops = Store(state / "factory.db", readonly=True).events(0, kind="controller_stop")
    assert [(e.severity, e.message.split(": ", 1)[1]) for e in stops] == [
        (
            "error",
            f"its lock {state / 'controller.lock'} was deleted or replaced, so a second controller could start "
            "on the store",
        ),
    ]


def test_a_late_stop_of_the_replaced_controller_is_not_the_next_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "factory.db")
    t = 1_700_000_000.0
    store.add_events(
        [
            Event(t, "controller_start", "controller 111 started with 1 node"),
            Event(t + 5, "controller_start", "controller 222 started with 1 node"),
            Event(t + 7, "controller_stop", "controller 111 stopped: its lock ... was deleted or replaced", "error"),
        ]
    )
    said = unclean_stop(store)  # 222 was killed: its start has no stop of its own
    assert said is not None
    assert said.startswith("the previous controller (pid 222) ended without stopping")
    store.add_events([Event(t + 9, "controller_stop", "controller 222 stopped")])
    assert unclean_stop(store) is None


def test_a_controller_still_running_without_its_lock_is_not_said_killed(tmp_path: Path) -> None:
    """The controller that took the new lock said the one still running "ended without stopping (killed, crashed...)"."""
    store = Store(tmp_path / "factory.db")
    script = "import sys; print('ready', flush=True); sys.stdin.read()"
    argv = [sys.executable, "-c", script, "--config", "f.yaml", "controller", "run"]  # a controller's command line
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as running:
        assert running.stdout is not None
        assert running.stdout.readline() == b"ready\n"  # exec'd: /proc has its command line, not pytest's
        store.add_events([Event(1_700_000_000.0, "controller_start", f"controller {running.pid} started with 1 node")])
        said = unclean_stop(store)
        assert running.stdin is not None
        running.stdin.close()
    assert said is not None
    assert said.startswith(f"the previous controller (pid {running.pid}) still runs, without its lock ")
    ended = unclean_stop(store)
    assert ended is not None
    assert ended.startswith(f"the previous controller (pid {running.pid}) ended without stopping")
