"""`metrics serve` re-reads factory.yaml on SIGHUP, and does not export a node whose stored row went stale as up.

It read factory.yaml once: a node added later never appeared, one removed stayed, and SIGHUP (`systemctl reload`)
killed it silently with exit 129. A node the live controller stopped watching was exported up with its last values.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from reaping import reaped
from sshd_fixture import free_port
from waiting import wait_for

from factoryctl.cli.metrics import MetricsSource
from factoryctl.config import load_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import NodeState
from factoryctl.store.sqlite import Store

NODE = "  {name}: {{transport: local, sim: {{profile: h100-sxm, gpus: 1}}}}\n"


def factory(path: Path, *names: str) -> None:
    path.write_text("name: lab\nnodes:\n" + "".join(NODE.format(name=name) for name in names))


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def read_until(proc: subprocess.Popen[bytes], wanted: str, within: float = 60.0) -> str:
    """What `proc` wrote on stderr up to and including `wanted`; AssertionError if it did not come `within` s."""
    assert proc.stderr is not None
    fd, seen = proc.stderr.fileno(), b""
    deadline = time.monotonic() + within
    while wanted.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        chunk = os.read(fd, 65536) if ready else b""
        said = seen.decode(errors="replace")
        assert chunk, f"{wanted!r} not on stderr within {within:g} s (exit status {proc.poll()}): {said!r}"
        seen += chunk
    return seen.decode()


def test_sighup_reloads_the_nodes_and_a_broken_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    factory(config, "n1")
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--port", str(port)]
    argv += ["--min-interval", "0"]
    with reaped(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)) as proc:
        wait_for(lambda: 'Hostname="n1"' in scrape(port), timeout=60, what="n1 exported")
        factory(config, "n1", "n2")
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: 'Hostname="n2"' in scrape(port), timeout=60, what="n2 exported after SIGHUP")
        config.write_text("nodes: [oops\n")
        proc.send_signal(signal.SIGHUP)
        refused = read_until(proc, "reload refused")  # the bad file was read and refused: now it must still serve
        assert proc.poll() is None
        assert 'Hostname="n2"' in scrape(port)  # still serving what it had
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    text = refused + err.decode()
    assert f"reloaded {config}: 2 nodes" in text
    assert "factoryctl: metrics: reload refused, keeping the previous configuration: " in text
    assert proc.returncode == 0  # SIGTERM still ends it, cleanly (a daemon's stop)


def test_a_stale_row_is_exported_down_without_values(tmp_path: Path) -> None:
    state = tmp_path / "state"
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: st\nstate_dir: {state}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  a1: {transport: local}\n  gone: {transport: local}\n"
    )
    lock = ControllerLock(state)
    lock.acquire()  # a live controller that no longer watches `gone`
    try:
        store = Store(state / "factory.db")
        now = time.time()
        for node, seen in (("gone", now - 60), ("a1", now)):
            sample = NodeSample(node, seen, gpus=(GpuSample(node, 0, uuid=f"GPU-{node}", power_w=321.0),))
            store.write([sample], states=[NodeState(node, "up", now - 3600, seen)])
        store.close()
        text = MetricsSource(load_config(config), 0.0, 5.0).text()
    finally:
        lock.release()
    assert 'factoryctl_node_up{Hostname="a1"} 1' in text
    assert 'factoryctl_node_up{Hostname="gone"} 0' in text
    assert "GPU-a1" in text
    assert "GPU-gone" not in text
