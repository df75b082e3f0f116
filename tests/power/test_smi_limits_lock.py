"""A power change through the nvidia-smi fallback holds the node's limits lock, as the agent's does (real sshd).

The fallback read a GPU's limit, set it and read it again with three separate nvidia-smi commands over SSH, holding
nothing: `power set` runs at the same time interleaved them, and the audit log showed several changes from one
before, and afters nobody set. Now the read, the sets and the read again run as one command under `flock` on the
node's limits lock, the file its agents hold (a simulated node's beside its state, a real node's where
factoryctl.agent.limits_lock puts it), waited for at most the request's lock wait and refused as the agent refuses.

The node has no usable Python (`python: /nonexistent/python3`), so every change goes through the simulated driver's
nvidia-smi shim on the sshd's PATH; its state dir holds quotes, `$(...)` and spaces, which must reach no shell.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from smi_wire import Wire
from sshd_fixture import SshdServer, sshd_factory  # noqa: F401 - the fixture

from factoryctl.agent.limits_lock import LimitsLock, real_node_lock_path
from factoryctl.agent.main import _limits_lock
from factoryctl.sim import smi as shim
from factoryctl.sim.state import SimNode
from factoryctl.sim.storage import limits_lock_path
from factoryctl.transport.smi import SmiBridge
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

pytestmark = pytest.mark.sshd

#: The sim state dir's name: what a shell would expand, split or run, were it ever unquoted.
ODD_NAME = 'it\'s $(touch PWNED) "odd" dir'
NODES = "  n1: {host: 127.0.0.1, python: /nonexistent/python3}\n"
#: The node's nvidia-smi as the real tool: it refuses the simulated node's `--factoryctl-limits-lock`.
REAL_TOOL = """#!/bin/sh
case "$1" in --factoryctl-limits-lock) echo "Invalid combination of input arguments."; exit 2 ;; esac
exec {shim} "$@"
"""
TRY_AGAIN = "nothing was changed: try again once it has ended."
BUSY_HINT = "another factoryctl (a cron job, a colleague, a dashboard) was changing this node's power limits"


class Node:
    """A one-GPU simulated node reached over a real sshd and driven through its nvidia-smi shim."""

    def __init__(self, server: SshdServer, root: Path, gpus: int = 1) -> None:
        self.server, self.root = server, root
        self.state = root / ODD_NAME / "sim"
        SimNode(str(self.state), "n1", "lab", profile="h100-sxm", gpus=gpus)
        self.shim = shim.write_shim(server.bin_dir / "nvidia-smi", "n1", str(self.state), "lab")
        self.config = server.write_factory(root / "factory.yaml", server.write_known_hosts(root / "kh"), NODES)
        self.env = {**os.environ, "XDG_STATE_HOME": str(root / "state"), "FACTORYCTL_REMOTE_CACHE": str(root / "c")}
        self.env.pop("SSH_AUTH_SOCK", None)
        self.lock_path = limits_lock_path(self.state, "lab", "n1")  # the simulated agents' (factoryctl.agent.main)

    def limit_w(self) -> float:
        return SimNode(str(self.state), "n1", "lab").enforced_limit_w(0)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """`factoryctl --config ... ARGS` in a process of its own."""
        argv = [sys.executable, "-m", "factoryctl", "--config", self.config, *args]
        return subprocess.Popen(argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, *args: str) -> tuple[int, str, str]:
        out, err = (proc := self.start(*args)).communicate(timeout=120)
        return proc.returncode, out, err

    def power_set(self, watts: float, *args: str) -> tuple[int, str, str]:
        return self.run("power", "set", "n1", "--watts", f"{watts:g}", "--reason", f"to {watts:g}", *args)

    def audit(self) -> list[dict[str, Any]]:
        code, out, err = self.run("audit", "-o", "json")
        assert code == 0, err
        return list(json.loads(out)["items"])


@pytest.fixture
def node(sshd_factory: Callable[..., SshdServer], tmp_path: Path) -> Node:  # noqa: F811 - the fixture
    return Node(sshd_factory(), tmp_path)


def chain_breaks(first_w: float, changes: list[dict[str, Any]]) -> list[str]:
    """Why the audited `changes` are not one chain from `first_w`: each change's before the previous one's after."""
    by_before: dict[float, list[dict[str, Any]]] = {}
    for change in changes:
        by_before.setdefault(change["before_w"], []).append(change)
    shared = {before: [c["reason"] for c in group] for before, group in by_before.items() if len(group) > 1}
    if shared:
        return [f"several changes from the same before: {shared}"]
    misreported = [c["reason"] for c in changes if c["after_w"] != float(c["reason"].split()[1])]
    if misreported:
        return [f"changes whose after is another's value: {misreported}"]
    current, followed = first_w, 0
    while current in by_before:
        current, followed = by_before.pop(current)[0]["after_w"], followed + 1
    return [] if followed == len(changes) else [f"the chain from {first_w:g} W stops after {followed} changes"]


def test_power_sets_at_once_through_nvidia_smi_audit_one_chain(node: Node) -> None:
    wanted = [200 + 10 * k for k in range(6)]
    running = [
        node.start("power", "set", "n1", "--watts", str(w), "--reason", f"to {w}", "--timeout", "60") for w in wanted
    ]
    for proc in running:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err
    changes = node.audit()
    assert sorted(c["after_w"] for c in changes) == sorted(wanted)
    assert chain_breaks(700.0, changes) == []
    assert not [*node.root.rglob("PWNED"), *node.server.root.rglob("PWNED")]  # the odd name ran nowhere


def waited_for(path: Path) -> bool:
    """Whether a process waits to lock `path`: /proc/locks lists a blocked request (`->`) on its inode."""
    found = path.stat()
    inode = f" {os.major(found.st_dev):02x}:{os.minor(found.st_dev):02x}:{found.st_ino} "
    return any(" -> " in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


def test_a_change_waits_for_the_agents_lock_and_reads_its_limit_under_it(node: Node) -> None:
    """An agent's change (its lock held, the limit set at its end, as the agent does) comes first, whole.

    The agent holds the lock until the fallback waits for it (blocked in `flock`), its change has ended, or 15 s: a
    change that did not wait for it ends first (read 700, set 400), and one that read before locking reads 700; either
    way the agent's 300 comes after that read, unaudited by that change.
    """
    held, ended, lock = threading.Event(), threading.Event(), LimitsLock(node.lock_path, private=False)

    def agent_change() -> None:
        with lock.held(timeout_s=5):
            held.set()
            deadline = time.monotonic() + 15
            while not (ended.wait(0.05) or waited_for(node.lock_path)) and time.monotonic() < deadline:
                pass
            SimNode(str(node.state), "n1", "lab").set_power_limit(0, 300)

    agent = threading.Thread(target=agent_change)
    agent.start()
    try:
        assert held.wait(30)
        code, _, err = node.power_set(400, "--timeout", "40")
    finally:
        ended.set()
        agent.join()
    assert code == 0, err
    [change] = node.audit()
    assert (change["before_w"], change["after_w"]) == (300.0, 400.0)
    assert node.limit_w() == 400.0


def test_a_lock_held_past_the_wait_is_refused_as_the_agent_refuses_it(node: Node) -> None:
    """Refused in the agent's words, its wait ending where the agent's would: 1 s before the --timeout."""
    with LimitsLock(node.lock_path, private=False).held(timeout_s=5):
        code, out, err = node.power_set(250, "--timeout", "4", "-o", "json")
    assert code == 1, err
    [error] = json.loads(out)["errors"]
    assert error["error"] == "driver"
    said = re.fullmatch(
        rf"another change of its power limits was still running after ([0-9.]+) s \(it holds "
        rf"{re.escape(str(node.lock_path))}\); nothing was changed: try again once it has ended\.",
        error["message"],
    )
    assert said, error["message"]
    assert 0 < float(said[1]) <= 3  # the 3 s the agent would wait, less the query of the range before it
    assert BUSY_HINT in err
    assert node.limit_w() == 700.0
    assert node.audit() == []
    assert node.power_set(250)[0] == 0  # released: the next change goes through


def test_a_real_nodes_nvidia_smi_locks_the_agents_real_node_lock(node: Node) -> None:
    """nvidia-smi without the shim's option: the lock is the real node's the agent takes (same user, same host)."""
    real = node.server.bin_dir / "nvidia-smi"
    hidden = node.shim.rename(node.shim.with_name("nvidia-smi-shim"))
    real.write_text(REAL_TOOL.format(shim=hidden))
    real.chmod(0o755)
    path = real_node_lock_path()
    with LimitsLock(path, private=True).held(timeout_s=5):
        code, out, err = node.power_set(250, "--timeout", "2", "-o", "json")  # the lock waited for 1 s
    assert code == 1, err
    assert json.loads(out)["errors"][0]["message"].endswith(f" s (it holds {path}); {TRY_AGAIN}")
    assert node.power_set(250)[0] == 0
    assert node.limit_w() == 250.0


def test_a_lock_file_that_is_a_link_is_refused_and_nothing_changes(node: Node) -> None:
    elsewhere = node.root / "elsewhere"
    node.lock_path.symlink_to(elsewhere)
    code, out, err = node.power_set(250, "-o", "json")
    assert code == 1, err
    said = f"cannot lock its power limits: {node.lock_path} is a symbolic link (remove it); nothing was changed"
    assert json.loads(out)["errors"][0] == {"node": "n1", "error": "driver", "message": said}
    assert f"factoryctl: n1: {said}" in err.splitlines()
    assert "the node's power-limits lock file cannot be used" in err
    assert not elsewhere.exists()
    assert node.limit_w() == 700.0


def test_a_node_without_flock_is_refused_and_nothing_changes(node: Node) -> None:
    """No util-linux flock on the node's PATH: refused (an unlocked change could break the chain), with what to do."""
    tools = node.root / "tools-without-flock"
    tools.mkdir()
    for name in os.listdir("/usr/bin"):
        if name != "flock":
            (tools / name).symlink_to(Path("/usr/bin") / name)
    shell = node.server.bin_dir / "sh"
    shell.write_text(f'#!/bin/sh\nPATH={node.server.bin_dir}:{tools} exec /bin/sh "$@"\n')
    shell.chmod(0o755)
    code, out, err = node.power_set(250, "-o", "json")
    assert code == 1, err
    message = json.loads(out)["errors"][0]["message"]
    assert json.loads(out)["errors"][0]["node"] == "n1"
    assert message.startswith("cannot lock its power limits: the node has no `flock` command (util-linux)")
    assert "install util-linux" in message
    assert message.endswith("; nothing was changed")
    assert node.limit_w() == 700.0


@pytest.mark.parametrize("state_dir", [ODD_NAME, None])
def test_the_simulated_nvidia_smi_names_the_lock_its_agents_hold(
    state_dir: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))  # the default state dir, for both
    where = ["--state-dir", state_dir] if state_dir else []
    assert shim.main(["--node", "n1", "--factory", "lab", *where, "--factoryctl-limits-lock"]) == 0
    agent = _limits_lock(argparse.Namespace(sim="h100-sxm", state_dir=state_dir, factory="lab", node="n1"))
    assert capsys.readouterr().out == f"factoryctl-limits-lock:{agent.path}\n"


#: The node's nvidia-smi, slow to answer a query once SLOW exists (its first, the hello's, answered at once).
SLOW_TOOL = """#!/bin/sh
case "$*" in *--query-gpu*) [ -e {slow} ] && sleep 1 ;; esac
exec {shim} "$@"
"""


def test_the_wait_for_the_lock_ends_when_the_agents_would_the_query_before_counted(node: Node) -> None:
    """A node slow to answer the range's query waits for the lock only what is left of `lock_timeout_s`.

    The agent waits `lock_timeout_s` from the request's arrival; a wait counted from the lock's own start came after
    the query, so the answer could come after factoryctl gave up on it, and a limit set then went unaudited.
    """
    slow = node.root / "slow"
    with wire_to(node, SLOW_TOOL.format(slow=shlex.quote(str(slow)), shim="{shim}"), bridge_timeout=30) as wire:
        slow.touch()
        with LimitsLock(node.lock_path, private=False).held(timeout_s=5):
            reply = wire.ask(id=1, op="set_power_limit", watts=250, gpus=[0], lock_timeout_s=1)  # the query's 1 s
    assert reply["ok"] is False, reply
    assert reply["error"]["reason"] == "lock_busy"
    assert reply["error"]["message"] == (
        f"another change of its power limits was still running after 0 s (it holds {node.lock_path}); {TRY_AGAIN}"
    )


@contextlib.contextmanager
def wire_to(node: Node, tool: str, bridge_timeout: float) -> Iterator[Wire]:
    """A Wire to the bridge of `node`, its nvidia-smi the script `tool` (`{shim}`: the shim), its hello read."""
    hidden = node.shim.rename(node.shim.with_name("nvidia-smi-shim"))
    node.shim.write_text(tool.replace("{shim}", shlex.quote(str(hidden))))
    node.shim.chmod(0o755)
    pool = SshPool(SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30))
    spec = node.server.node("n1", node.server.write_known_hosts(node.root / "kh2"))
    wire = Wire(SmiBridge("n1", pool.connect(spec), timeout=bridge_timeout))
    try:
        assert wire.read()["type"] == "hello"
        yield wire
    finally:
        wire.close()
        pool.close()


#: The node's nvidia-smi, hanging in the set of GPU 1.
HANGING_SET = """#!/bin/sh
case "$*" in "-i 1 -pl "*) sleep 60 ;; esac
exec {shim} "$@"
"""


def test_a_change_cut_off_part_way_still_lists_the_gpus_it_set(
    sshd_factory: Callable[..., SshdServer],  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Cut off by its timeout in GPU 1's set: GPU 0's change, done under the lock, is still reported for the audit."""
    node = Node(sshd_factory(), tmp_path, gpus=2)
    with wire_to(node, HANGING_SET, bridge_timeout=1) as wire:
        reply = wire.ask(id=1, op="set_power_limit", watts=250, gpus=None, lock_timeout_s=0)
    assert reply["ok"] is False, reply
    assert reply["result"] == {"gpus": [{"index": 0, "before_w": 700.0, "enforced_w": None, "clamped": False}]}
    assert "did not finish within" in reply["error"]["message"], reply
    assert SimNode(str(node.state), "n1", "lab").enforced_limit_w(0) == 250.0
