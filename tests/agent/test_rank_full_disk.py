"""Job ranks on a full disk: a rank is never left running unrecorded, and one that ends still has its exit status.

The node's jobs root is a small tmpfs (root mounts it; CI runs the tests as root), filled with files until it has no
inode left; a test then frees as many as it needs. A command whose `record.json` cannot be written would be found by
no agent and killed by no `kill`: it must be killed at once and the launch refused in one sentence. A rank that ends
on a full disk must still read as ended with its status, or the executor runs it again.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.agent.ranks import is_process


@pytest.fixture
def jobs_root(tmp_path: Path) -> Iterator[Path]:
    """The jobs root of simulated node n1 (state under `tmp_path/state`): a tmpfs of 1 MiB and 64 inodes."""
    root = tmp_path / "state" / "default" / "n1.jobs"
    root.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,nr_inodes=64,mode=0700", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        for record_path in root.rglob("record.json"):  # no rank outlives its test
            record = json.loads(record_path.read_text())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record["pgid"], signal.SIGKILL)
            if is_process(record["wrapper_pid"], record["wrapper_start_ticks"]):
                os.kill(record["wrapper_pid"], signal.SIGKILL)
        subprocess.run(["umount", "-l", str(root)], check=True)


def fill_inodes(root: Path) -> list[Path]:
    """Empty files under `root` until the file system has no inode left; the files made."""
    made: list[Path] = []
    while True:
        path = root / f"filler-{len(made)}"
        try:
            path.touch()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
            return made
        made.append(path)


def fill_blocks(root: Path) -> None:
    """Write into the last filler file until no block is left either."""
    filler = max(root.glob("filler-*"), key=lambda p: int(p.name.split("-")[1]))
    with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"x" * 4096)


def free(files: list[Path], count: int) -> None:
    """Give `count` inodes back."""
    for path in files[-count:]:
        path.unlink()
    del files[-count:]


def launch(agent: Any, rank: int, argv: list[str], cwd: Path) -> dict[str, Any]:
    return agent.request("launch", job="j1", rank=rank, argv=argv, env={}, gpus=[], cwd=str(cwd))


def rank_of(agent: Any, rank: int) -> dict[str, Any] | None:
    ranks = agent.request("ranks", jobs=["j1"])["result"]["ranks"]
    return next((r for r in ranks if r["rank"] == rank), None)


def processes_running(argv: list[str]) -> list[int]:
    """The pids of live (not zombie) processes whose command line is `argv`."""
    wanted = "\0".join(argv).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        with contextlib.suppress(OSError):
            if entry.isdigit() and Path(f"/proc/{entry}/cmdline").read_bytes() == wanted:
                found.append(int(entry))
    return found


@pytest.mark.parametrize("room", [2, 3])  # the rank's directory, its spec (then its output) and `exit`: no record
def test_a_rank_whose_record_cannot_be_written_is_killed_and_refused(
    start_agent: Any, jobs_root: Path, tmp_path: Path, room: int
) -> None:
    agent = start_agent(state_dir=tmp_path / "state")
    assert launch(agent, 0, ["true"], tmp_path)["ok"]  # the job's directory, lock and checkpoint directory exist
    fillers = fill_inodes(jobs_root)
    free(fillers, room)
    command = ["sleep", f"3000.{os.getpid()}"]
    reply = launch(agent, 1, command, tmp_path)
    assert not reply["ok"], reply
    assert reply["error"]["kind"] == "agent"
    assert reply["error"]["message"] == f"cannot start the rank: no space left on {jobs_root}/j1/rank-1 for its record"
    assert processes_running(command) == []  # killed before the answer: nothing runs that no agent could find
    assert rank_of(agent, 1) is None
    assert not (jobs_root / "j1" / "rank-1").exists()
    free(fillers, 4 - room)  # space again: the same launch starts it
    again = launch(agent, 1, command, tmp_path)
    assert again["ok"], again
    assert again["result"]["already"] is False
    assert processes_running(command) == [again["result"]["pid"]]


def test_a_full_disk_where_nothing_starts_is_one_sentence(start_agent: Any, jobs_root: Path, tmp_path: Path) -> None:
    agent = start_agent(state_dir=tmp_path / "state")
    fill_inodes(jobs_root)
    reply = launch(agent, 0, ["true"], tmp_path)
    assert not reply["ok"], reply
    assert reply["error"]["kind"] == "agent"
    assert reply["error"]["message"] == f"cannot start the rank: no space left on {jobs_root}/j1/rank-0 for its record"


def test_a_rank_that_ends_on_a_full_disk_has_its_exit_status(start_agent: Any, jobs_root: Path, tmp_path: Path) -> None:
    agent = start_agent(state_dir=tmp_path / "state")
    assert launch(agent, 0, ["true"], tmp_path)["ok"]
    fillers = fill_inodes(jobs_root)
    free(fillers, 4)  # the rank's directory, spec then output, exit and record
    fifo = tmp_path / "release"
    os.mkfifo(fifo)
    reply = launch(agent, 1, ["cat", str(fifo)], tmp_path)
    assert reply["ok"], reply
    fillers += fill_inodes(jobs_root)
    fill_blocks(jobs_root)  # not one inode nor block left when the command ends
    with open(fifo, "wb"):
        pass  # cat reads the end of the file and exits 0
    wait_for(lambda: not (rank_of(agent, 1) or {}).get("running", True), what="rank 1 ending")
    entry = rank_of(agent, 1)
    assert entry is not None
    assert (entry["running"], entry["exit_code"]) == (False, 0)
    assert entry["ended_at"] is not None
    assert entry["ended_at"] >= entry["started_at"]
