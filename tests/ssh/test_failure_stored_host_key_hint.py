"""A host-key failure a controller stored is read back with the hint a poll gives: `trust NODE` or `--replace`.

The store keeps a failure's kind and message, not its hint; `nodes` read from a live store used to print the kind's
generic hint, `nodes trust TARGET`, which for a changed key is refused again (exit 4). The failures here are the real
ones a real sshd causes (unknown key, changed key), stored in a real store under a held controller lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import PATIENT, SshdServer, keygen

from factoryctl.config import load_config
from factoryctl.errors import NodeError
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.latest import read_live
from factoryctl.transport.ssh_pool import SshPool


def refusal(node: Any) -> NodeError:
    """The NodeError a real connection to the sshd raises for `node`."""
    pool = SshPool(PATIENT)
    try:
        with pytest.raises(NodeError) as caught:
            pool.connect(node)
    finally:
        pool.close()
    assert caught.value.kind == "host_key"
    return caught.value


def known_hosts_with(tmp_path: Path, sshd: SshdServer, changed: bool) -> Path:
    """Empty (the key is unknown), or recording another key for the server's `[host]:port` (the key changed)."""
    path = tmp_path / "known_hosts"
    path.write_text("")
    if changed:
        other = keygen(tmp_path / "other_host_key")
        kind, blob = other.with_suffix(".pub").read_text().split()[:2]
        path.write_text(f"[{sshd.host}]:{sshd.port} {kind} {blob}\n")
    return path


@pytest.mark.parametrize(
    ("changed", "hint"),
    [(False, "`factoryctl nodes trust a1`."), (True, "then run `factoryctl nodes trust a1 --replace`.")],
)
def test_a_stored_host_key_failure_gets_the_hint_a_poll_gives(
    changed: bool,
    hint: str,
    tmp_path: Path,
    sshd: SshdServer,
    ssh_node: Callable[..., Any],
    cli: Callable[..., Any],
) -> None:
    known = known_hosts_with(tmp_path, sshd, changed)
    polled = refusal(ssh_node("a1", known_hosts=known))
    assert polled.hint is not None
    assert polled.hint.endswith(hint)

    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: hk\nstate_dir: {state}\nssh: {{known_hosts: {known}}}\n"
        f"nodes:\n  a1: {{host: 127.0.0.1, port: {sshd.port}}}\n  l1: {{transport: local}}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()  # a live controller: it holds the lock and has just stored l1's sample
    try:
        store = Store(state / "factory.db")
        now = time.time()
        l1 = NodeSample("l1", now, gpus=(GpuSample("l1", 0, uuid="GPU-l1", power_w=300.0),))
        store.write([l1], states=[NodeState("a1", "down", now, None, "host_key", polled.message)])
        store.close()
        assert read_live(load_config(config)) is not None  # `nodes` reads the store and polls nobody
        listing = cli("-c", str(config), "nodes", "a1")
    finally:
        lock.release()
    assert listing.exit_code == 4
    assert polled.message in listing.stderr
    assert f"hint: {polled.hint}" in listing.stderr.splitlines()
    assert "TARGET" not in listing.stderr
