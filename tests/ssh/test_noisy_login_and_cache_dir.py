"""Session 15's SSH review, against real sshds: what the node's login shell or file system does to the probes.

A `~/.bashrc` that echoes a banner put it ahead of every probe's answer: `nodes check` failed on
`int('Welcome banner\\n3')`, and `gpus` took the banner for the login user's uid. A read-only login directory was
reported as a failed upload (`[Errno 2] No such file`). A Python older than 3.9 failed `nodes check` although every
command falls back to nvidia-smi on it, and a node without NVML was "sees no GPU" there while `gpus` named the missing
library. A command past its timeout on a node that went silent waited for a probe after its kill's 2 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from relays import SilencingRelay, silencing_node
from sshd_fixture import SSHD, SshdServer

from factoryctl.errors import NodeError
from factoryctl.sim import smi as shim
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

#: A login shell's startup file that greets on both streams, as some sites' `/etc/bash.bashrc` do.
NOISY_BASHRC = 'echo "Welcome banner"\necho "Welcome on stderr" >&2\n'
SIM_NODE = "  n1: {host: 127.0.0.1, sim: h100-sxm, gpus: 1}\n"

#: An interpreter that answers as Python 3.8 does: its version, "too old" to the usability probe, and the agent's
#: zipapp fails to run on it.
OLD_PYTHON = """#!/bin/sh
case "$2" in
  *"%d.%d.%d"*) echo 3.8.18 ;;
  *sys.exit*) exit 3 ;;
  *) echo "SyntaxError: invalid syntax" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def noisy(sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> tuple[SshdServer, Path]:
    """A server whose login shell prints a banner on stdout and stderr before every command."""
    server = sshd_factory()
    (server.root / "home" / ".bashrc").write_text(NOISY_BASHRC)
    return server, server.write_known_hosts(tmp_path / "known_hosts")


def steps_of(result: Any) -> dict[str, tuple[str, str]]:
    """`nodes check -o json`'s one node: step -> (status, detail)."""
    return {step["step"]: (step["status"], step["detail"]) for step in result.json()["items"][0]["steps"]}


def test_a_login_shell_that_prints_breaks_no_command(cli: Any, noisy: tuple[SshdServer, Path], tmp_path: Path) -> None:
    server, known = noisy
    config = server.write_factory(tmp_path / "factory.yaml", known, SIM_NODE)
    r = cli("--config", config, "nodes", "check", "n1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stdout + r.stderr
    steps = steps_of(r)
    assert {status for status, _ in steps.values()} == {"ok"}, steps
    assert steps["python"][1].split()[-1].count(".") == 2  # `python3 3.11.7`: the version, not the banner
    r = cli("--config", config, "gpus", "n1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert [item["node"] for item in r.json()["items"]] == ["n1"]
    r = cli("--config", config, "exec", "n1", "--", "echo", "hi")  # exec shows what the login shell says, as ssh
    assert r.exit_code == 0, r.stderr
    assert "Welcome banner\nhi\n" in r.stdout


def test_the_nvidia_smi_fallback_reads_past_a_banner_too(
    cli: Any, noisy: tuple[SshdServer, Path], tmp_path: Path
) -> None:
    server, known = noisy
    shim.write_shim(server.bin_dir / "nvidia-smi", "old", str(tmp_path / "sim"), "lab")
    python = server.bin_dir / "python3.8"
    python.write_text(OLD_PYTHON)
    python.chmod(0o755)
    config = server.write_factory(tmp_path / "factory.yaml", known, f"  old: {{host: 127.0.0.1, python: {python}}}\n")
    r = cli("--config", config, "gpus", "old", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.json()["items"][0]["node"] == "old"


def test_an_old_python_is_diagnosed_as_the_commands_treat_it(
    cli: Any, sshd_factory: Callable[..., SshdServer], tmp_path: Path
) -> None:
    """Older than 3.9 is a warning with the nvidia-smi fallback, as for a missing interpreter; the fallback is checked."""
    server = sshd_factory()
    shim.write_shim(server.bin_dir / "nvidia-smi", "old", str(tmp_path / "sim"), "lab")
    python = server.bin_dir / "python3.8"
    python.write_text(OLD_PYTHON)
    python.chmod(0o755)
    known = server.write_known_hosts(tmp_path / "known_hosts")
    config = server.write_factory(tmp_path / "factory.yaml", known, f"  old: {{host: 127.0.0.1, python: {python}}}\n")
    r = cli("--config", config, "nodes", "check", "old", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stdout + r.stderr
    steps = steps_of(r)
    assert steps["python"] == (
        "warn",
        f"{python} 3.8.18 is older than 3.9; nvidia-smi fallback (read-only telemetry, -pl)",
    )
    assert steps["agent"][0] == "warn"
    assert "nvidia-smi fallback" in steps["agent"][1]
    assert steps["driver"][0] == steps["nvml"][0] == "ok"


def test_a_node_without_nvml_is_named_so_by_nodes_check(
    cli: Any, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    """A real (not simulated) node on this machine, which has Python but neither libnvidia-ml nor nvidia-smi."""
    config = sshd.write_factory(tmp_path / "factory.yaml", known_hosts, "  real1: {host: 127.0.0.1}\n")
    r = cli("--config", config, "nodes", "check", "real1", "-o", "json", "--timeout", "60")
    assert r.exit_code != 0
    status, detail = steps_of(r)["driver"]
    assert status == "fail"
    assert "NVML Shared Library Not Found" in detail, detail
    r = cli("--config", config, "gpus", "real1", "--timeout", "60")
    assert "NVML Shared Library Not Found" in r.stderr  # what `gpus` says too


def start_in_private_mounts(server: SshdServer, mounts: str) -> None:
    """Run `server`'s sshd again in a mount namespace of its own where `mounts` (sh) ran first."""
    server.stop()
    config = server.root / "sshd_config"
    with (server.root / "sshd.log").open("ab") as log:
        server.process = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mounts} && exec {SSHD} -D -e -f {config}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((server.host, server.port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"sshd did not listen again: {(server.root / 'sshd.log').read_text()}")


def test_a_cache_that_cannot_be_created_is_named_with_its_cause(
    cli: Any, sshd_factory: Callable[..., SshdServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The login directory is read-only on the node (in sshd's own mount namespace here): no upload was tried."""
    server = sshd_factory()
    home = tmp_path / "read-only-home"
    home.mkdir()
    start_in_private_mounts(server, f"mount --bind {home} {home} && mount -o remount,bind,ro {home}")
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(home / ".cache" / "factoryctl"))
    known = server.write_known_hosts(tmp_path / "known_hosts")
    config = server.write_factory(tmp_path / "factory.yaml", known, SIM_NODE)
    r = cli("--config", config, "gpus", "n1", "--timeout", "60")
    assert r.exit_code != 0
    assert (
        f"cannot create the agent cache {home}/.cache/factoryctl on the node (mkdir {home}/.cache): Read-only file "
        "system." in r.stderr
    ), r.stderr
    assert "ssh.remote_cache_dir" in r.stderr
    assert "upload" not in r.stderr


@pytest.fixture
def silenced(sshd: SshdServer, tmp_path: Path) -> Iterator[tuple[SilencingRelay, Any]]:
    """Node `n1` behind a relay that drops every byte once told to (a node whose sshd stopped)."""
    with silencing_node(sshd, tmp_path) as relayed:
        yield relayed


def test_a_timeout_on_a_silent_node_returns_two_seconds_after_it(
    silenced: tuple[SilencingRelay, Any], tmp_path: Path
) -> None:
    """docs/ssh.md: "has not ended 2 s later"; a probe for escaped processes waited a whole channel timeout more."""
    relay, node = silenced
    options = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=20)
    pool = SshPool(options)
    marker = tmp_path / "started"
    try:
        connection = pool.connect(node)
        waiter = threading.Thread(
            target=lambda: (_wait_for_file(marker), relay.silent.set()), daemon=True, name="silence-when-started"
        )
        waiter.start()
        started = time.monotonic()
        with pytest.raises(NodeError) as caught:
            connection.run(["sh", "-c", f"touch {marker}; sleep 60"], timeout=3)
        took = time.monotonic() - started
    finally:
        pool.close()
        _kill_group_of(str(marker))
    assert caught.value.kind == "timeout"
    assert "may still be running on the node" in caught.value.message
    assert took < 3 + 2 + 1.5, took


def _wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _kill_group_of(word: str) -> None:
    """End the command left on the node (its `sh -c` names `word`), and its process group."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if any(word in part for part in process.info["cmdline"] or ()):
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(os.getpgid(process.pid), signal.SIGKILL)
