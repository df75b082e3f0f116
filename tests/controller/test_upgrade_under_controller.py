"""factoryctl's files changing under a running controller (an upgrade) is never every node down.

`controller run` runs for months, and `pip install -U factoryctl` replaces its files under it: a module it first
imported after that (a reload's first SSH node: factoryctl.transport.ssh) was the upgrade's, failing against the old
ones in memory, and the node was recorded down for `cannot import name ...`; a reconnect path as lazy recorded every
node down. The controller now imports all of its code when it starts (`load_all`), and a connect failing to load
factoryctl's own code all the same is the controller's failure: said once at error level, no node judged for it, and
the controller ends with status 1 (its `controller_stop` event says why) for systemd's `Restart=on-failure` to start
it on the new files.

The upgrade is real in the subprocess test (a copy of the package, its file replaced while the controller runs);
in-process, a module whose import fails stands in for the new file (`sys.modules[name] = None`: its import raises).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from reaping import reaped
from waiting import wait_for

import factoryctl
from factoryctl.config import FactoryConfig, load_config
from factoryctl.controller import Controller
from factoryctl.model.inventory import NodeSpec
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.collector import AGENT_START_TIMEOUT_S, Collector
from factoryctl.telemetry.links import Connector, transport_connector
from factoryctl.transport.base import NodeTransport
from factoryctl.transport.session import AgentSession

pytestmark = pytest.mark.slow

SAID = "factoryctl's files changed under this running controller (an upgrade?): restart it"
#: The module a sim fleet's connect imports (open_transport imports it when it connects).
LAZY = "factoryctl.transport.local"
SIM = "{transport: local, sim: h100-sxm, gpus: 1}"
#: An upgrade's file: it imports a name the old `factoryctl.transport.base` in memory does not have.
UPGRADED = "from factoryctl.transport.base import command_result_of_the_next_release  # noqa\n"


def write_factory(tmp_path: Path, nodes: str) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: up\nstate_dir: {tmp_path / 'state'}\nnodes:\n{nodes}controller:\n  interval_s: 0.5\n")
    return path


def stored(tmp_path: Path) -> tuple[list[tuple[str, str | None, str, str]], dict[str, tuple[str, str | None]]]:
    """The store's events (kind, node, severity, message) and each node's state (state, message)."""
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        events = [(e.kind, e.node, e.severity, e.message) for e in store.events(0.0, None, limit=1000)]
        return events, {state.node: (state.state, state.message) for state, _ in store.latest()}
    finally:
        store.close()


@pytest.fixture
def upgraded(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on the transport's module cannot be loaded, as an upgrade's file importing what the old code lacks."""
    monkeypatch.setitem(sys.modules, LAZY, None)


def test_the_collector_says_its_code_changed_once_and_records_no_node_down(
    tmp_path: Path, upgraded: None, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_factory(tmp_path, f"  s[1-2]: {SIM}\n"))
    tried: Counter[str] = Counter()

    def counting(config: FactoryConfig) -> Connector:
        connect = transport_connector(config, AGENT_START_TIMEOUT_S)

        def counted(node: NodeSpec) -> tuple[NodeTransport, AgentSession]:
            tried[node.name] += 1  # a second try comes after the first failure was handed to the writer
            return connect(node)

        return counted

    store = Store(config.store_path)
    collector = Collector(config, store, connector=counting)
    try:
        with caplog.at_level(logging.ERROR, logger="factoryctl"):
            collector.start()
            wait_for(lambda: min(tried["s1"], tried["s2"]) >= 2, 30.0, "each node's connect failed, then tried again")
            collector.stop()
    finally:
        store.close()
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1, said
    assert said[0].startswith(f"{SAID} (ModuleNotFoundError: "), said
    assert "the controller stops (status 1)" in said[0]
    assert collector.failure == SAID
    events, states = stored(tmp_path)
    assert [e for e in events if e[0].startswith("node_")] == []
    assert all(state != "down" for state, _ in states.values()), states


def test_a_reload_whose_connector_fails_to_load_is_noticed_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(write_factory(tmp_path, f"  s1: {SIM}\n"))
    store = Store(config.store_path)
    collector = Collector(config, store)
    try:
        collector.start()
        wait_for(lambda: collector.up_count() == 1, 30.0, "s1 up")
        # a reload's first SSH node has its connector check the agent cache: that module, loaded then, is an upgrade's
        monkeypatch.setitem(sys.modules, "factoryctl.transport.agent_cache", None)
        with caplog.at_level(logging.ERROR, logger="factoryctl"):
            collector.apply(load_config(write_factory(tmp_path, f"  s1: {SIM}\n  x1: {{host: 127.0.0.1, port: 1}}\n")))
            collector.settle()
        collector.stop()
    finally:
        store.close()
    assert collector.failure == SAID
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(said) == 1, said
    assert said[0].startswith(f"{SAID} (ModuleNotFoundError: "), said
    events, states = stored(tmp_path)
    assert [e[:2] for e in events if e[0].startswith("node_")] == [("node_up", "s1")]
    assert states["s1"][0] == "up"


def test_a_controller_whose_code_changed_stops_with_status_1_and_says_why(tmp_path: Path, upgraded: None) -> None:
    controller = Controller(load_config(write_factory(tmp_path, f"  s[1-2]: {SIM}\n")))
    status: list[int] = []
    runner = threading.Thread(target=lambda: status.append(controller.run()), daemon=True)
    runner.start()
    try:
        wait_for(lambda: not runner.is_alive(), 30.0, "the controller ended on its own")
    finally:
        controller.request_stop()
        runner.join(30)
    assert status == [1]
    assert controller.failure == SAID
    events, states = stored(tmp_path)
    assert [e for e in events if e[0].startswith("node_")] == []
    assert [e[2:] for e in events if e[0] == "controller_stop"] == [
        ("error", f"controller {os.getpid()} stopped: {SAID}")
    ]
    assert all(state != "down" for state, _ in states.values()), states


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package, first on a subprocess's path: its files are the ones an upgrade replaces."""
    root = tmp_path / "site"
    shutil.copytree(Path(factoryctl.__file__).parent, root / "factoryctl", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_a_controller_started_before_an_upgrade_still_reaches_a_node_a_reload_adds(
    tmp_path: Path, package_copy: Path
) -> None:
    config = write_factory(tmp_path, f"  s1: {SIM}\n")
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "controller", "run"]
    env = {"PYTHONPATH": str(package_copy), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    with reaped(subprocess.Popen(argv, stderr=subprocess.PIPE, env=env, cwd=tmp_path)) as proc:
        assert proc.stderr is not None
        assert b" started: 1 node" in proc.stderr.readline()  # said once it runs: everything is loaded by then
        wait_for(lambda: stored(tmp_path)[1].get("s1", ("",))[0] == "up", 60.0, "s1 up")
        (package_copy / "factoryctl" / "transport" / "ssh.py").write_text(UPGRADED)  # the upgrade
        write_factory(tmp_path, f"  s1: {SIM}\n  x1: {{host: 127.0.0.1, port: 1}}\n")  # nothing listens on port 1
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: proc.poll() is not None or "x1" in stored(tmp_path)[1], 60.0, "x1 judged")
        running = proc.poll() is None
        proc.terminate()
        status = proc.wait(timeout=30)
        log = proc.stderr.read().decode()
    states = stored(tmp_path)[1]
    assert running, log
    assert status == 0, log
    assert states["s1"][0] == "up"
    assert states["x1"][0] == "down"
    assert "refused" in (states["x1"][1] or ""), states  # its own reason: not `cannot import name ...`
    assert "import" not in log, log
