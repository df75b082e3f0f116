"""`ranks` with `running` also answers a rank whose command ended while its daemonised worker lives on.

Such a worker left the rank's group (`setsid`) and carries its mark: it holds the rank's GPUs as much as a running
command would, so the scheduler's stray sweep, which asks for the live ranks, must be told of it. A node keeps
thousands of ended ranks, so the answer must not cost a read of each one's record: the rank's mark names its
directory, and only the records of ranks whose mark a live process carries are read. Real processes, a real rank
directory tree; every process a test starts is killed after it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rank_escapes import DAEMON, EscapedProcesses
from waiting import wait_for

from factoryctl.agent.ranks import RankStore

#: Ended ranks beside the one whose worker lives on, as a node that ran jobs for days keeps them.
ENDED = 300


@pytest.fixture
def escaped() -> Iterator[EscapedProcesses]:
    found = EscapedProcesses()
    yield found
    found.kill_all()


def _ended_ranks(root: Path, count: int) -> None:
    """`count` ranks of older launches that ended long ago, as the wrapper leaves them (record, exit status)."""
    for n in range(count):
        directory = root / f"old{n}.1700000000" / "rank-0"
        directory.mkdir(parents=True)
        record = {"pid": 1, "pgid": 1, "argv": ["true"], "gpus": [0], "start_ticks": 1, "mark": f"{n:032x}"}
        (directory / "record.json").write_text(json.dumps(record))
        (directory / "exit").write_text("0\n")


def _launch_daemon(store: RankStore, tmp_path: Path, escaped: EscapedProcesses) -> int:
    """Launch rank 0 of `zz.1`, whose command leaves a worker in a session of its own and ends; the worker's pid."""
    spec = {"argv": [sys.executable, "-c", DAEMON, str(tmp_path / "worker"), "0"], "env": {}, "gpus": [], "cwd": None}
    store.launch("zz.1", 0, spec)
    worker = escaped.pid_in(tmp_path / "worker")
    wait_for(lambda: store.ranks(["zz.1"])[0]["exit_code"] == 0, what="the rank's command ending")
    return worker


def test_a_rank_whose_worker_outlived_its_command_is_live_and_alone_read(
    tmp_path: Path, escaped: EscapedProcesses, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RankStore(tmp_path / "jobs")
    _ended_ranks(store.root, ENDED)
    _launch_daemon(store, tmp_path, escaped)
    read: list[Path] = []
    real = RankStore._record

    def counted(self: RankStore, directory: Path) -> dict[str, Any] | None:
        read.append(directory)
        return real(self, directory)

    monkeypatch.setattr(RankStore, "_record", counted)
    [live] = store.ranks(None, running_only=True)  # was none: only ranks whose command still runs
    assert (live["job"], live["running"], live["group_running"], live["exit_code"]) == ("zz.1", False, True, 0)
    assert read == [store.rank_dir("zz.1", 0)]  # not one of the 300 ended ranks' records


def test_a_rank_whose_processes_all_ended_is_not_live(tmp_path: Path, escaped: EscapedProcesses) -> None:
    store = RankStore(tmp_path / "jobs")
    worker = _launch_daemon(store, tmp_path, escaped)
    assert [r["job"] for r in store.ranks(None, running_only=True)] == ["zz.1"]
    store.kill("zz.1", "KILL")
    wait_for(lambda: not store.ranks(None, running_only=True), what=f"the worker {worker} gone from the live ranks")
    [ended] = store.ranks(None)
    assert (ended["running"], ended["group_running"]) == (False, False)
