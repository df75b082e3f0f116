"""The node's power-limits lock works where flock(2) is stricter, and root finds a place for it when /run cannot hold it.

Over NFS, flock(2) places an exclusive lock only on a file opened for writing ("NFS details"), and the lock file was
opened read-only: every `power set` on a simulated node whose state dir is on an NFS home failed with an `agent`
error, EBADF. Any other flock failure (ENOLCK: NFS without its lock service) is the lock's, refused by name,
never a generic agent error. These tests wrap `fcntl.flock` with that rule, as the regression review did, and run
the real agent on it. On a node whose /run is read-only, root's lock directory cannot be made there, and every
change was refused: root then locks in its home like other users, decided from what every agent of the node sees.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.agent import limits_lock
from factoryctl.agent.limits_lock import (
    LimitsLock,
    LimitsLockError,
    LimitsLockTimeout,
    home_lock_directory,
    real_node_lock_path,
    run_can_hold_lock,
)

Flock = Callable[[int, int], None]
REAL_FLOCK: Flock = fcntl.flock


def _nfs_flock(fd: int, operation: int) -> None:
    """flock(2) as over NFS: an exclusive lock on a descriptor not opened for writing is EBADF."""
    if operation & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    REAL_FLOCK(fd, operation)


def _failing_on_limits_locks(code: int) -> Flock:
    """flock failing with `code` on the limits lock files only (the simulator's own state lock still works)."""

    def flock(fd: int, operation: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith((".limits-lock", "gpu-limits.lock")):
            raise OSError(code, os.strerror(code))
        REAL_FLOCK(fd, operation)

    return flock


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _run_agent(tmp_path: Path, capsys: pytest.CaptureFixture[str], *requests: dict[str, Any]) -> list[dict[str, Any]]:
    """The real agent in this process on simulated node n1, answering `requests`; its replies (after the hello)."""
    from factoryctl.agent import main as agent_main

    lines = "".join(json.dumps({"id": n, **request}) + "\n" for n, request in enumerate(requests, 1))
    argv = ["--sim", "h100-sxm", "--gpus", "2", "--node", "n1", "--factory", "f", "--state-dir", str(tmp_path)]
    capsys.readouterr()
    stdin, sys.stdin = sys.stdin, io.StringIO(lines)
    try:
        assert agent_main.main(argv) == 0
    finally:
        sys.stdin = stdin
    replies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert replies[0]["type"] == "hello", replies
    return replies[1:]


@pytest.mark.parametrize("private", [False, True])
def test_the_lock_is_taken_where_an_exclusive_flock_needs_a_file_open_for_writing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, private: bool
) -> None:
    monkeypatch.setattr(fcntl, "flock", _nfs_flock)
    path = tmp_path / "locks" / "gpu-limits.lock"
    path.parent.mkdir(mode=0o700)
    with (
        LimitsLock(path, private=private).held(timeout_s=1),
        pytest.raises(LimitsLockTimeout),
        LimitsLock(path, private=private).held(timeout_s=0),
    ):
        pass  # really held: a second holder waits
    with LimitsLock(path, private=private).held(timeout_s=0):
        pass  # and released


def test_the_agent_sets_and_resets_limits_where_flock_follows_nfs_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fcntl, "flock", _nfs_flock)
    replies = _run_agent(
        tmp_path,
        capsys,
        {"op": "set_power_limit", "gpus": [0], "watts": 500},
        {"op": "reset_power_limit", "gpus": [0]},
    )
    assert [reply["ok"] for reply in replies] == [True, True], replies
    assert replies[0]["result"]["gpus"] == [{"index": 0, "before_w": 700.0, "enforced_w": 500.0, "clamped": False}]
    assert replies[1]["result"]["gpus"] == [{"index": 0, "before_w": 500.0, "enforced_w": 700.0, "clamped": False}]


@pytest.mark.parametrize("code", [errno.ENOLCK, errno.EBADF])
def test_a_flock_failure_other_than_busy_is_a_lock_error_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(fcntl, "flock", _failing_on_limits_locks(code))
    path = tmp_path / "gpu-limits.lock"
    before = _open_descriptors()
    with pytest.raises(LimitsLockError) as caught, LimitsLock(path, private=True).held(timeout_s=1):
        pass
    assert not isinstance(caught.value, LimitsLockTimeout)
    assert str(caught.value) == f"flock on {path} failed: {os.strerror(code)}"
    assert _open_descriptors() == before  # the descriptor is closed


def test_the_agent_refuses_a_change_it_cannot_lock_as_a_driver_error_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fcntl, "flock", _failing_on_limits_locks(errno.ENOLCK))
    refused, sample = _run_agent(
        tmp_path, capsys, {"op": "set_power_limit", "gpus": [0], "watts": 500}, {"op": "sample"}
    )
    assert refused["ok"] is False, refused
    lock_file = tmp_path / "f" / "n1.limits-lock"
    assert refused["error"] == {
        "kind": "driver",
        "message": f"cannot lock its power limits: flock on {lock_file} failed: No locks available; nothing was changed",
        "reason": "lock_unusable",
    }
    assert "result" not in refused
    assert sample["result"]["gpus"][0]["power_limit_w"] == 700.0


def test_a_signal_during_the_wait_does_not_end_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    interrupted: list[int] = []

    def flock(fd: int, operation: int) -> None:
        if not interrupted:
            interrupted.append(fd)
            raise InterruptedError(errno.EINTR, os.strerror(errno.EINTR))
        REAL_FLOCK(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with LimitsLock(tmp_path / "gpu-limits.lock", private=True).held(timeout_s=1):
        assert interrupted


def test_root_locks_under_run_when_it_can_hold_the_lock_else_in_its_home_like_other_users() -> None:
    asked: list[Path] = []

    def run_can_hold(answer: bool) -> Callable[[Path], bool]:
        def check(directory: Path) -> bool:
            asked.append(directory)
            return answer

        return check

    other = next(user for user in pwd.getpwall() if user.pw_uid != 0)
    assert real_node_lock_path(0, run_can_hold(True)) == Path("/run/factoryctl-0/gpu-limits.lock")
    assert real_node_lock_path(0, run_can_hold(False)) == home_lock_directory(0) / "gpu-limits.lock"
    assert asked == [Path("/run/factoryctl-0")] * 2
    in_home = home_lock_directory(other.pw_uid) / "gpu-limits.lock"
    assert real_node_lock_path(other.pw_uid, run_can_hold(True)) == in_home
    assert len(asked) == 2  # only root locks under /run


def test_a_run_others_can_write_cannot_hold_roots_lock(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    run.chmod(0o1777)
    assert not run_can_hold_lock(run / "factoryctl-0")
    assert not run_can_hold_lock(tmp_path / "missing" / "factoryctl-0")


def test_the_lock_is_found_again_before_each_acquire(tmp_path: Path) -> None:
    places = iter([tmp_path / "a" / "gpu-limits.lock", tmp_path / "b" / "gpu-limits.lock"])
    lock = LimitsLock(tmp_path / "first" / "gpu-limits.lock", private=True, locate=lambda: next(places))
    with lock.held(timeout_s=1):
        assert lock.path == tmp_path / "a" / "gpu-limits.lock"
        with pytest.raises(LimitsLockTimeout) as caught, LimitsLock(lock.path, private=True).held(timeout_s=0):
            pass
        assert caught.value.path == tmp_path / "a" / "gpu-limits.lock"  # the agent names the file held
    with lock.held(timeout_s=1):
        assert lock.path == tmp_path / "b" / "gpu-limits.lock"
    assert not (tmp_path / "first").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's lock can be under /run")
def test_a_real_nodes_agent_decides_where_to_lock_before_each_change(monkeypatch: pytest.MonkeyPatch) -> None:
    from factoryctl.agent.main import _limits_lock, build_parser

    opened: list[Path] = []

    def record(self: LimitsLock, path: Path) -> int:
        opened.append(path)
        raise LimitsLockError("not opened in a test")  # the real /run and /tmp are left alone

    monkeypatch.setattr(LimitsLock, "_open", record)
    monkeypatch.setattr(limits_lock, "run_can_hold_lock", lambda directory: False)
    lock = _limits_lock(build_parser().parse_args(["--node", "gpu01"]))
    with pytest.raises(LimitsLockError), lock.held(timeout_s=0):
        pass
    monkeypatch.setattr(limits_lock, "run_can_hold_lock", lambda directory: True)
    with pytest.raises(LimitsLockError), lock.held(timeout_s=0):
        pass
    assert opened == [home_lock_directory(0) / "gpu-limits.lock", Path("/run/factoryctl-0/gpu-limits.lock")]


@pytest.fixture
def private_mounts(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """Run Python code as root in a mount namespace of its own, after mounting a tmpfs (options given) on `run`."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("mounting needs root and unshare(1)")
    run = tmp_path / "run"
    run.mkdir()

    def in_namespace(options: str, code: str) -> str:
        script = f'mount -t tmpfs -o {options},mode=0755 none {run} && exec {sys.executable} -c "$0" {run}'
        done = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", script, code],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    yield in_namespace
    assert not os.path.ismount(run)  # the mount never left its namespace


CHECK = """
import os, sys
from pathlib import Path
from factoryctl.agent.limits_lock import run_can_hold_lock
run = Path(sys.argv[1])
before = run_can_hold_lock(run / "factoryctl-0")
if os.access(run, os.W_OK):
    (run / "factoryctl-0").mkdir(mode=0o700)
    os.system(f"mount -o remount,bind,ro {run}")
print(before, run_can_hold_lock(run / "factoryctl-0"))
"""


def test_a_read_only_run_cannot_hold_roots_lock(private_mounts: Callable[[str, str], str]) -> None:
    assert private_mounts("ro", CHECK) == "False False"


def test_a_writable_run_holds_roots_lock_until_it_is_made_read_only(private_mounts: Callable[[str, str], str]) -> None:
    assert private_mounts("rw", CHECK) == "True False"  # also once the lock's directory is there


def test_power_set_on_a_node_whose_lock_cannot_be_used_names_it_with_a_hint(cli: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    factory = tmp_path / "factory.yaml"
    factory.write_text(
        f"name: lab\nstate_dir: {state}\nnodes:\n  n1: {{transport: local, sim: {{profile: l40s, gpus: 1}}}}\n"
    )
    assert cli("--config", str(factory), "power", "set", "n1", "--watts", "300").exit_code == 0
    lock_file = state / "sim" / "lab" / "n1.limits-lock"
    lock_file.unlink()
    lock_file.symlink_to(tmp_path / "elsewhere")
    refused = cli("--config", str(factory), "power", "set", "n1", "--watts", "250", "-o", "json")
    assert refused.exit_code == 1, refused.stderr
    [error] = json.loads(refused.stdout)["errors"]
    assert error["error"] == "driver"
    said = f"cannot lock its power limits: {lock_file} is a symbolic link (remove it); nothing was changed"
    assert (error["node"], error["message"]) == ("n1", said)
    assert f"factoryctl: n1: {said}" in refused.stderr.splitlines()
    assert (
        "hint: the node's power-limits lock file cannot be used: fix or remove what the message names" in refused.stderr
    )
    assert not (tmp_path / "elsewhere").exists()
