"""The temporary directory the agent is built in when its cache cannot be used: re-checked at every use, held open.

The reviewer's case (session 21): with the cache unusable, the zipapp went to /tmp/factoryctl-agent-XXXX, made and
checked once, then reused by its name. A cleaner of /tmp removing it made every later agent start of a long-running
controller fail until a restart; another local user who made a directory of that name (the warning names it) got
their file run as the controller's user on local nodes, and uploaded to every SSH node. Now the directory is held
open from the moment it is made and never looked up by its name again, and each use re-checks it, making a new one
(with a warning) when it is gone.

The other user is `nobody`: making a directory theirs needs root, as in test_hardening_local_cache.py. The cleaner
and the other user act at the worst moment for the swaps between the check and the start: right after
`agent_zipapp` returned (it is wrapped), never by timing luck. Real local nodes, a real sshd, the real agent.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import zipapp
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from factoryctl.errors import NodeError
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.transport import bundle
from factoryctl.transport.local import LocalTransport
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
FACTORY = "name: lab\nstate_dir: {state}\nnodes:\n  ws: {{transport: local, sim: {{profile: h100-sxm, gpus: 2}}}}\n"


@pytest.fixture(autouse=True)
def unusable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache that cannot be made (its parent is a file), and no temporary directory left from another test."""
    monkeypatch.setattr(bundle, "_FALLBACK", [])
    monkeypatch.setattr(bundle, "_UNWRITABLE", {})
    monkeypatch.setattr(bundle, "_VERIFIED", {})
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker / "cache"))


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY.format(state=tmp_path / "state"))
    return path


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Written by the other user's zipapp, should it ever run."""
    return tmp_path / "PLANTED_RAN"


@pytest.fixture
def taken() -> Iterator[list[Path]]:
    """The directories the other user took over (`_take_over`), removed at the end: factoryctl leaves them alone."""
    directories: list[Path] = []
    yield directories
    for directory in directories:
        shutil.rmtree(directory, ignore_errors=True)


def _temporary_directory(caplog: pytest.LogCaptureFixture) -> Path:
    """The temporary directory the last warning says the agent is built in."""
    return Path(re.findall(r"it is built in (\S+) for ", caplog.text)[-1])


def _gpus(cli: Any, config: Path) -> Any:
    return cli("--config", str(config), "gpus", "ws")


def _take_over(directory: Path, marker: Path, taken: list[Path]) -> Path:
    """What the cleaner then the other user do: `directory` removed, made again as theirs with their zipapp in it."""
    shutil.rmtree(directory)
    directory.mkdir()
    taken.append(directory)
    directory.chmod(0o777)
    src = directory.parent / f"{directory.name}-src"
    src.mkdir()
    (src / "__main__.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    planted = directory / f"factoryctl-agent-{bundle.bundle_hash()}.pyz"
    zipapp.create_archive(src, planted)
    shutil.rmtree(src)
    for path in (directory, planted):
        os.chown(path, FOREIGN_UID, FOREIGN_UID)
    return planted


def test_a_temporary_directory_a_cleaner_removed_is_made_anew_with_a_warning(
    cli: Any, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = _gpus(cli, config)
    assert (first.exit_code, first.stderr) == (0, ""), first.stderr
    removed = _temporary_directory(caplog)
    shutil.rmtree(removed)  # a cleaner of /tmp, while the controller runs
    caplog.clear()
    again = _gpus(cli, config)  # the same process: it used to fail here, and at every start after, until a restart
    assert (again.exit_code, again.stderr) == (0, ""), again.stderr
    assert again.stdout.count("NVIDIA H100") == 2
    made = _temporary_directory(caplog)
    assert made != removed
    assert f"the temporary directory {removed} the agent was built in is gone" in caplog.text
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    caplog.clear()
    assert _gpus(cli, config).exit_code == 0
    assert caplog.text == ""  # warned once for the new one


@as_root
def test_another_users_directory_made_in_its_place_is_never_used(
    cli: Any, config: Path, caplog: pytest.LogCaptureFixture, marker: Path, taken: list[Path]
) -> None:
    assert _gpus(cli, config).exit_code == 0
    theirs = _temporary_directory(caplog)
    planted = _take_over(theirs, marker, taken)
    again = _gpus(cli, config)
    assert (again.exit_code, again.stderr) == (0, ""), again.stderr
    assert again.stdout.count("NVIDIA H100") == 2
    assert not marker.exists()
    assert _temporary_directory(caplog) != theirs
    assert os.lstat(planted).st_uid == FOREIGN_UID  # theirs, left alone


def _swapped_after_the_check(monkeypatch: pytest.MonkeyPatch, marker: Path, taken: list[Path]) -> None:
    """`agent_zipapp` checks and returns its zipapp; then, before it is run or read, the directory is taken over."""
    checked = bundle.agent_zipapp

    def then_taken_over(cache_dir: Path | None = None) -> Path:
        path = checked(cache_dir)
        _take_over(bundle.shown_path(path).parent, marker, taken)
        return path

    monkeypatch.setattr(bundle, "agent_zipapp", then_taken_over)


@as_root
def test_a_swap_between_the_check_and_the_start_never_runs_on_a_local_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, marker: Path, taken: list[Path]
) -> None:
    _swapped_after_the_check(monkeypatch, marker, taken)
    node = NodeSpec(name="ws", host="localhost", transport="local", sim=SimSpec("h100-sxm", 1, 0))
    transport = LocalTransport(node, "lab", tmp_path / "state")
    try:
        with pytest.raises(NodeError):  # the zipapp checked went with its directory: nothing to run
            transport.start_agent(30)
    finally:
        transport.close()
    assert not marker.exists()


@as_root
def test_a_swap_between_the_check_and_the_upload_never_reaches_an_ssh_node(
    ssh_node: Callable[..., NodeSpec], monkeypatch: pytest.MonkeyPatch, marker: Path, taken: list[Path]
) -> None:
    _swapped_after_the_check(monkeypatch, marker, taken)
    transport = SshTransport.open(ssh_node("n1", sim=SimSpec("h100-sxm", 1, 0)), "lab", OPTIONS)
    try:
        with pytest.raises(NodeError) as raised:
            transport.start_agent(60)
    finally:
        transport.close()
    assert "cannot read the agent zipapp" in raised.value.message
    assert not marker.exists()


def test_an_ssh_node_gets_the_agent_from_the_held_directory(
    ssh_node: Callable[..., NodeSpec], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        transport = SshTransport.open(ssh_node("n1", sim=SimSpec("h100-sxm", 1, 0)), "lab", OPTIONS)
        try:
            session = transport.start_agent(60)
            assert session.hello_info["backend"] == "sim"
            session.close()
        finally:
            transport.close()
    assert "it is built in" in caplog.text


def test_without_proc_fd_each_use_checks_the_name_is_still_the_directory_made(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, taken: list[Path]
) -> None:
    monkeypatch.setattr(bundle, "_is_dir", lambda path, info: False)  # a system with no /proc/self/fd
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        first = bundle.agent_zipapp()
        assert bundle.pinned_fds(first) == ()  # reached by its name: nothing to inherit
        assert bundle.agent_zipapp() == first
        shutil.rmtree(first.parent)
        first.parent.mkdir(mode=0o700)  # another directory under that name (ours here: no root needed)
        taken.append(first.parent)
        caplog.clear()
        again = bundle.agent_zipapp()
    assert again.parent != first.parent
    assert f"the temporary directory {first.parent} the agent was built in is gone" in caplog.text
    assert again.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_a_node_python_that_closes_inherited_descriptors_still_starts_its_agent(cli: Any, tmp_path: Path) -> None:
    """`python: sudo python3` (or doas, `conda run`) closes the descriptors it inherits: run through the held
    directory's `/proc/self/fd/<fd>`, the agent was not found (`can't open file '/proc/self/fd/3/...'`). While the
    directory's name still leads to it, the agent is run by that name."""
    import sys

    wrapper = tmp_path / "closing-python"
    closes = "import os, sys; os.closerange(3, 65536); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -c "{closes}" "$@"\n')
    wrapper.chmod(0o755)
    config = tmp_path / "wrapped.yaml"
    node = f"{{transport: local, python: {wrapper}, sim: {{profile: h100-sxm, gpus: 2}}}}"
    config.write_text(f"name: lab\nstate_dir: {tmp_path / 'state'}\nnodes:\n  ws: {node}\n")
    listed = cli("--config", str(config), "gpus", "ws", "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [gpu["index"] for gpu in listed.json()["items"]] == [0, 1]
