"""A long-running process ships the agent it started with, not the one an upgrade put on disk under it.

Re-read, session 24: `controller run`, `dash` and `metrics serve` load all their modules when they start
(`load_all`), but the agent zipapp was built at each agent start from the files then on disk. After an upgrade that
bumped the agent protocol, every node such a process (re)connected to failed with `the agent speaks protocol 2, this
factoryctl speaks 1`; an upgrade of the agent's code alone ran code the process was not written against. They now
pin the bundle's bytes when they start (`stale_code.freeze_code`, transport/bundle.py `pin_contents`).

The upgrade is real in the subprocess tests (a copy of the package, its protocol.py bumped while `metrics serve` runs,
before its first poll; while the controller runs, before a reload adds a node); in-process, a member file of the
bundle is changed between two agent starts.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest
from reaping import reaped
from sshd_fixture import free_port
from waiting import wait_for

import factoryctl
from factoryctl.store.sqlite import Store
from factoryctl.transport import bundle

PROTOCOL = "factoryctl/agent/protocol.py"
SIM = "{transport: local, sim: {profile: h100-sxm, gpus: 1}}"


@pytest.fixture
def changing_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A member file of the bundle that the test may change, this process unpinned until the test pins it."""
    extra = tmp_path / "extra.py"
    extra.write_text("X = 1\n")
    real = bundle.bundle_members
    monkeypatch.setattr(bundle, "bundle_members", lambda: [*real(), ("factoryctl/agent/extra.py", extra)])
    monkeypatch.setattr(bundle, "_PINNED", None)  # restored after: the pin does not outlive the test
    monkeypatch.setattr(bundle, "_VERIFIED", {})
    return extra


def test_a_pinned_process_ships_the_bytes_it_started_with(tmp_path: Path, changing_member: Path) -> None:
    bundle.pin_contents()
    first = bundle.agent_zipapp(tmp_path / "cache")
    shipped = first.read_bytes()
    changing_member.write_text("X = 2\n")  # the upgrade
    second = bundle.agent_zipapp(tmp_path / "cache")
    assert second == first
    assert second.read_bytes() == shipped
    assert zipfile.ZipFile(second).read("factoryctl/agent/extra.py") == b"X = 1\n"
    assert bundle.bundle_hash() in first.name
    bundle.pin_contents()  # a second call keeps the first bytes
    assert bundle.agent_zipapp(tmp_path / "cache") == first


def test_a_pinned_zipapp_replaced_in_the_cache_is_rebuilt_from_the_pinned_bytes(
    tmp_path: Path, changing_member: Path
) -> None:
    """The checks of the cached file hold for pinned bytes: other bytes under its name are replaced, not shipped."""
    bundle.pin_contents()
    first = bundle.agent_zipapp(tmp_path / "cache")
    shipped = first.read_bytes()
    changing_member.write_text("X = 2\n")
    first.write_bytes(b"#!/bin/sh\necho planted\n")  # same owner and mode: only its bytes tell
    bundle._VERIFIED.clear()  # another process's view: this file's bytes were never checked
    assert bundle.agent_zipapp(tmp_path / "cache").read_bytes() == shipped


def test_an_unpinned_process_ships_what_is_on_disk(tmp_path: Path, changing_member: Path) -> None:
    """Short-lived commands read the files at each agent start, as before (nothing read at their start)."""
    first = bundle.agent_zipapp(tmp_path / "cache")
    changing_member.write_text("X = 2\n")
    second = bundle.agent_zipapp(tmp_path / "cache")
    assert second != first
    assert zipfile.ZipFile(second).read("factoryctl/agent/extra.py") == b"X = 2\n"


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the installed package, first on a subprocess's path: its files are the ones an upgrade replaces."""
    root = tmp_path / "site"
    shutil.copytree(Path(factoryctl.__file__).parent, root / "factoryctl", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _status(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_serve_started_before_an_agent_protocol_bump_still_polls_its_nodes(
    tmp_path: Path, package_copy: Path
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: up\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  s[1-2]: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--port", str(port)]
    cache = tmp_path / "cache"
    env = {"PYTHONPATH": str(package_copy), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    env |= {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)}
    with reaped(
        subprocess.Popen([*argv, "--min-interval", "0"], stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    ) as proc:
        assert proc.stderr is not None
        assert b"serving http://" in proc.stderr.readline()  # said once it listens: started, nothing polled yet
        _bump(package_copy)  # the upgrade, before its first poll builds and starts an agent
        wait_for(lambda: _status(port)[1].count("factoryctl_node_up{") == 2, 60.0, "both nodes exported")
        status, text = _status(port)  # every poll started after the upgrade
        proc.terminate()
        proc.wait(timeout=20)
    assert status == 200
    assert "the agent speaks protocol 2" not in text
    assert 'factoryctl_node_up{Hostname="s1"} 1' in text
    assert 'factoryctl_node_up{Hostname="s2"} 1' in text
    zipapps = list((cache / "factoryctl").glob("factoryctl-agent-*.pyz"))
    assert len(zipapps) == 1
    assert b"PROTOCOL_VERSION: Final = 1" in zipfile.ZipFile(zipapps[0]).read(PROTOCOL)  # the one it started with


def test_a_bundle_that_cannot_be_read_pins_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process still starts; each agent start says why the agent cannot be built, as without the pin."""

    def missing() -> list[tuple[str, Path]]:
        raise RuntimeError("nvidia-ml-py (pynvml.py) is not installed; reinstall factoryctl")

    monkeypatch.setattr(bundle, "_PINNED", None)
    monkeypatch.setattr(bundle, "bundle_members", missing)
    bundle.pin_contents()
    assert bundle._PINNED is None
    with pytest.raises(RuntimeError, match="nvidia-ml-py"):
        bundle.agent_zipapp()


def _bump(package: Path) -> None:
    """The upgrade: the agent protocol's version goes up in the package's files."""
    protocol = package / PROTOCOL
    bumped = protocol.read_text().replace("PROTOCOL_VERSION: Final = 1", "PROTOCOL_VERSION: Final = 2")
    assert bumped != protocol.read_text()
    protocol.write_text(bumped)


def _states(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    """Each node's stored state (state, message)."""
    store = Store(tmp_path / "state" / "factory.db", readonly=True)
    try:
        return {state.node: (state.state, state.message) for state, _ in store.latest()}
    finally:
        store.close()


def test_a_controller_started_before_an_agent_protocol_bump_reaches_a_node_a_reload_adds(
    tmp_path: Path, package_copy: Path
) -> None:
    config = tmp_path / "factory.yaml"
    head = f"name: up\nstate_dir: {tmp_path / 'state'}\ncontroller:\n  interval_s: 0.5\nnodes:\n  s1: {SIM}\n"
    config.write_text(head)
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "controller", "run"]
    env = {"PYTHONPATH": str(package_copy), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    env |= {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    with reaped(subprocess.Popen(argv, stderr=subprocess.PIPE, env=env, cwd=tmp_path)) as proc:
        assert proc.stderr is not None
        assert b" started: 1 node" in proc.stderr.readline()
        wait_for(lambda: _states(tmp_path).get("s1", ("",))[0] == "up", 60.0, "s1 up")
        _bump(package_copy)
        config.write_text(f"{head}  s2: {SIM}\n")
        proc.send_signal(signal.SIGHUP)  # a reload: s2's first agent is built and started after the upgrade
        wait_for(lambda: _states(tmp_path).get("s2", ("",))[0] in ("up", "down"), 60.0, "s2 judged")
        proc.terminate()
        status = proc.wait(timeout=30)
        log = proc.stderr.read().decode()
    states = _states(tmp_path)
    assert status == 0, log
    assert states["s2"][0] == "up", states
    assert "speaks protocol" not in log, log


def test_a_watch_started_before_an_agent_protocol_bump_still_reads_its_nodes(
    tmp_path: Path, package_copy: Path
) -> None:
    """`nodes --watch` runs for hours and starts an agent at each ask: after the bump its nodes were all `down`."""
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: up\nnodes:\n  s[1-2]: {SIM}\n")
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "nodes", "all", "--watch"]
    env = {"PYTHONPATH": str(package_copy), "PYTHONDONTWRITEBYTECODE": "1", "PATH": "/usr/bin:/bin"}
    env |= {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    command = [*argv, "--interval", "0.5", "-o", "json"]
    with reaped(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)) as proc:
        assert proc.stdout is not None
        before = json.loads(proc.stdout.readline())  # a first redraw: its agents started before the upgrade
        _bump(package_copy)
        after = [json.loads(proc.stdout.readline()) for _ in range(6)]  # each node asked again since
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    assert {item["node"] for item in before["items"]} == {"s1", "s2"}
    assert "speaks protocol" not in stderr.decode()
    assert [item["state"] for item in after[-1]["items"]] == ["up", "up"], after[-1]
