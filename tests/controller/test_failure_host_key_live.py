"""A node's sshd comes back with a new host key while a controller runs: what the store then tells its readers.

Found by failure injection (sshd killed, restarted ~10 s later with a new key): `nodes` read from the live store
hinted `nodes trust TARGET` (a literal TARGET, no `--replace`: following it was refused again, exit 4), and the
"HOST KEY CHANGED" `node_down` event carried the time of the earlier "samples missed" one.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV
from sshd_fixture import SshdServer
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.store.rows import Event, NodeState
from factoryctl.store.sqlite import Store, StoreError
from factoryctl.telemetry.latest import read_live

pytestmark = [pytest.mark.sshd, pytest.mark.slow]


def write_config(tmp_path: Path, server: SshdServer) -> Path:
    """a1 behind the real sshd, l1 a local node that keeps the store live while a1 is down."""
    known = server.write_known_hosts(tmp_path / "known_hosts")
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: hk\nstate_dir: {tmp_path / 'state'}\n"
        f"ssh: {{user: {server.user}, identity_file: {server.user_key}, known_hosts: {known}, connect_timeout_s: 5}}\n"
        "nodes:\n"
        f"  a1: {{host: 127.0.0.1, port: {server.port}, sim: h100-sxm, gpus: 1}}\n"
        "  l1: {transport: local, sim: h100-sxm, gpus: 1}\n"
        "controller:\n  interval_s: 0.5\n"
    )
    return path


def node_state(tmp_path: Path, node: str) -> NodeState | None:
    path = tmp_path / "state" / "factory.db"
    if not path.exists():
        return None
    try:
        store = Store(path, readonly=True)
    except StoreError:
        return None  # being created by the controller right now
    try:
        return next((state for state, _ in store.latest() if state.node == node), None)
    finally:
        store.close()


def down_events(tmp_path: Path, node: str) -> list[Event]:
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        return [e for e in store.events(0) if e.kind == "node_down" and e.node == node]
    finally:
        store.close()


@pytest.fixture
def controller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], subprocess.Popen[bytes]]]:
    """`controller run` as a real process; killed after the test if still running."""
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    procs: list[subprocess.Popen[bytes]] = []

    def launch(config: Path) -> subprocess.Popen[bytes]:
        argv = [*CLI_ARGV, "-c", str(config)]
        proc = subprocess.Popen([*argv, "controller", "run"], stderr=subprocess.DEVNULL)
        procs.append(proc)
        return proc

    yield launch
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def test_changed_host_key_read_from_the_store_hints_replace_and_is_stamped_when_it_happened(
    tmp_path: Path, sshd_factory: Callable[..., SshdServer], controller: Any, cli: Any
) -> None:
    server = sshd_factory()
    config = write_config(tmp_path, server)
    controller(config)
    wait_for(lambda: getattr(node_state(tmp_path, "a1"), "state", None) == "up", timeout=60)

    server.kill()
    wait_for(lambda: getattr(node_state(tmp_path, "a1"), "state", None) == "down", timeout=30)
    restarted_at = time.time()
    server.restart(new_host_key=True)

    def key_refused() -> bool:
        state = node_state(tmp_path, "a1")
        return state is not None and state.error == "host_key"

    wait_for(key_refused, timeout=30)
    assert read_live(load_config(config)) is not None  # l1 keeps the store live: `nodes` reads it, polls nobody
    listing = cli("-c", str(config), "nodes", "a1")
    assert listing.exit_code == 4
    assert "HOST KEY CHANGED" in listing.stderr
    assert "factoryctl nodes trust a1 --replace" in listing.stderr
    assert "TARGET" not in listing.stderr

    events = down_events(tmp_path, "a1")
    changed = [e for e in events if "HOST KEY CHANGED" in e.message]
    assert len(changed) == 1
    assert len(events) >= 2  # the earlier down event (refused, or samples missed) is its own
    assert changed[0].time >= restarted_at - 0.001  # stored in ms; before the fix: the earlier down event's time
