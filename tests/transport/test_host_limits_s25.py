"""Out of processes, threads or address space here is this machine's limit, said once as such, never a node's fault.

A review under a pids cgroup (systemd's TasksMax=) saw a local node's `cannot start python3: Resource temporarily
unavailable`, exec's `exited with exit code 126` for `sleep`, and an agent's `its last words: RuntimeError: can't
start new thread` with the hint to check the node; the task-limit error itself carried a count of running threads
that differed from node to node, so one cause took twenty lines. Under `ulimit -v 1G` the task limit was named while
glibc's malloc arenas (64 MiB of address space per thread) had filled the gigabyte. And `controller status` said
healthy (exit 0) with 44 of 48 nodes down for this machine's limit (tested beside its other hints, in
tests/controller/test_controller_status_hints.py).

A fork that fails for real takes a user the limit applies to: RLIMIT_NPROC does not hold root, so the process runs as
nobody when the tests run as root (tests/nonroot.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from nonroot import as_non_root

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.host_limits import LOCAL, thread_limit_error
from factoryctl.transport.local import LocalTransport

#: Runs a command on a local node with no process left to start (RLIMIT_NPROC 1), and prints what `run` gave.
RUN_WITHOUT_PROCESSES = """
import json, resource, sys
from pathlib import Path
from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport.local import LocalTransport

transport = LocalTransport(NodeSpec(name="ws", host="ws", transport="local"), "lab", Path(sys.argv[1]))
resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
try:
    result = transport.run(["sleep", "1"], 30)
    print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr.decode()}))
except NodeError as exc:
    print(json.dumps({"kind": exc.kind, "message": exc.message, "hint": exc.hint}))
"""

#: Under a finite address-space limit (argv[1] bytes), what a thread that did not start and a library that could not
#: be mapped are called.
UNDER_ULIMIT_V = """
import json, resource, sys
from factoryctl.transport.host_limits import local_limit_error, thread_limit_error

resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_AS)[1]))
thread = thread_limit_error("n1")
mapped = local_limit_error("n1", ImportError("_rust.abi3.so: failed to map segment from shared object"))
print(json.dumps([[error.kind, error.message, error.hint] if error else None for error in (thread, mapped)]))
"""

#: Under an address-space limit with room for 16 thread stacks and a few malloc arenas (not one per thread), starts
#: 16 threads that each allocate through malloc and wait for the others; prints how many could not start or allocate.
THREADS_UNDER_ULIMIT_V = """
import resource, threading
from factoryctl.transport.host_limits import fanout_within_file_limit

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

THREADS = 16
room = vm_size() + THREADS * (8 << 20) + (320 << 20)  # their stacks, and 5 arenas of 64 MiB
resource.setrlimit(resource.RLIMIT_STACK, (8 << 20, resource.getrlimit(resource.RLIMIT_STACK)[1]))
resource.setrlimit(resource.RLIMIT_AS, (room, resource.getrlimit(resource.RLIMIT_AS)[1]))
fanout_within_file_limit(THREADS, 1)  # what a fan-out does first
together = threading.Barrier(THREADS + 1, timeout=60)
failed = []

def work():
    try:
        kept = [bytearray(1000) for _ in range(200)]  # malloc, not pymalloc: 1000 bytes is past its 512
    except MemoryError:
        failed.append("malloc")
    try:
        together.wait()
    except threading.BrokenBarrierError:
        pass

threads = []
for _ in range(THREADS):
    thread = threading.Thread(target=work)
    try:
        thread.start()
        threads.append(thread)
    except RuntimeError:
        failed.append("thread")
if len(threads) < THREADS:
    together.abort()
else:
    together.wait()
for thread in threads:
    thread.join()
print(len(failed))
"""


def test_a_command_that_cannot_be_forked_is_this_machines_task_limit_not_exit_126(tmp_path: Path) -> None:
    os.chmod(tmp_path, 0o755)  # nobody's process reads its state dir's path
    found = subprocess.run(
        as_non_root([sys.executable, "-c", RUN_WITHOUT_PROCESSES, str(tmp_path)]),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    said = json.loads(found.stdout)
    assert said.get("kind") == LOCAL, said  # was {"exit_code": 126, "stderr": "sleep: Resource temporarily ..."}
    assert said["message"].startswith("this machine cannot start another thread or process: its task limit is reached")
    assert "not a fault of the node" in said["message"]
    assert "TasksMax=" in said["hint"]
    assert "`ulimit -u`" in said["hint"]


def test_a_local_agent_that_died_of_the_task_limit_is_this_machines_limit(tmp_path: Path) -> None:
    python = tmp_path / "python3-starved"
    python.write_text('#!/bin/sh\necho "RuntimeError: can\'t start new thread" >&2\nexit 1\n')
    python.chmod(0o755)
    node = NodeSpec(name="ws", host="ws", transport="local", python=str(python))
    transport = LocalTransport(node, "lab", tmp_path)
    try:
        with pytest.raises(NodeError) as caught:
            transport.start_agent(30)
    finally:
        transport.close()
    assert caught.value.kind == LOCAL, caught.value.message  # was `agent`: "the agent exited; its last words: ..."
    assert "its task limit is reached" in caught.value.message
    assert "nodes check" not in (caught.value.hint or "")


def test_the_task_limit_is_one_message_whatever_the_threads_running() -> None:
    first = thread_limit_error("n1")
    release = threading.Event()
    more = [threading.Thread(target=release.wait, daemon=True) for _ in range(3)]
    for thread in more:
        thread.start()
    try:
        second = thread_limit_error("n2")
    finally:
        release.set()
        for thread in more:
            thread.join()
    assert (first.message, first.hint) == (second.message, second.hint)  # one line in the summary, not one per count


def test_under_ulimit_v_the_address_space_is_named_not_the_task_limit() -> None:
    found = subprocess.run(
        [sys.executable, "-c", UNDER_ULIMIT_V, str(64 << 30)], capture_output=True, text=True, timeout=60, check=True
    )
    thread, mapped = json.loads(found.stdout)
    assert thread[0] == LOCAL
    assert thread[1] == (
        "this machine cannot start another thread: its address-space limit (ulimit -v is 64 GiB) is reached, not a"
        " fault of the node"
    )
    assert "LimitAS=" in thread[2]
    assert "`ulimit -v`" in thread[2]
    assert "TasksMax" not in thread[2]
    assert mapped is not None, "a library that could not be mapped was a node's failure"
    assert mapped[0] == LOCAL
    assert "address-space limit (ulimit -v is 64 GiB)" in mapped[1]


def test_threads_fit_under_ulimit_v_with_malloc_arenas_capped() -> None:
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    found = subprocess.run(
        [sys.executable, "-c", THREADS_UNDER_ULIMIT_V], capture_output=True, text=True, timeout=120, check=True, env=env
    )
    assert found.stdout.strip() == "0", found.stdout  # without the cap: an arena per thread, and threads refused
