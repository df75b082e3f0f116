"""factory.yaml is read only if no one but the user (or root) could have written it, as ssh reads ~/.ssh/config.

A factory.yaml another user wrote in a shared directory ran their `python:` as whoever invoked factoryctl there
(root, in the review). Now such a file is a config error (exit 3), however it was found; a pipe still works, a
group-writable file whose group is the user's alone (umask 002) still works, and a file nested 5,000 brackets
deep is a config error naming the file instead of `unexpected error: RecursionError`.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from factoryctl.private_files import _group_is_the_owners_own

ROOT = os.geteuid() == 0
CLI = [sys.executable, "-m", "factoryctl"]


def nobody() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user `nobody` here")
    return entry.pw_uid, entry.pw_gid


def planted(path: Path, marker: Path) -> Path:
    """A factory.yaml whose local node's `python:` leaves `marker` behind if it is ever run."""
    script = path.parent / "evil.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: s14\nnodes:\n  n1: {{transport: local, python: {script}}}\n")
    return path


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
@pytest.mark.parametrize("found_by", ["--config", "$FACTORYCTL_CONFIG", "current directory", "XDG config dir"])
def test_a_factory_yaml_of_another_user_is_refused_however_it_is_found(
    cli: Any, isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found_by: str
) -> None:
    marker = tmp_path / "ran"
    where = {
        "--config": tmp_path / "shared" / "factory.yaml",
        "$FACTORYCTL_CONFIG": tmp_path / "shared" / "factory.yaml",
        "current directory": isolated_home / "factory.yaml",
        "XDG config dir": isolated_home / ".config" / "factoryctl" / "factory.yaml",
    }[found_by]
    (tmp_path / "shared").mkdir()
    where.parent.mkdir(parents=True, exist_ok=True)
    path = planted(where, marker)
    os.chown(path, *nobody())
    args: list[str] = ["--config", str(path)] if found_by == "--config" else []
    if found_by == "$FACTORYCTL_CONFIG":
        monkeypatch.setenv("FACTORYCTL_CONFIG", str(path))
    result = cli(*args, "gpus")
    assert (result.exit_code, result.stdout) == (3, "")
    assert result.stderr.splitlines() == [
        f"factoryctl: {path} belongs to uid {nobody()[0]}, not root, so someone else could choose the commands "
        "factoryctl runs as you; it is not read.",
        f"hint: make it yours: `chown 0 {path}` (and `chmod go-w {path}`), or move it aside.",
    ]
    assert not marker.exists()


def test_a_factory_yaml_others_may_write_is_refused(cli: Any, tmp_path: Path) -> None:
    path = planted(tmp_path / "factory.yaml", tmp_path / "ran")
    path.chmod(0o666)
    result = cli("--config", str(path), "config", "validate")
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"factoryctl: {path} is writable by others (mode 0666), so someone else could choose the commands "
        "factoryctl runs as you; it is not read.",
        f"hint: run `chmod go-w {path}`.",
    ]


@pytest.mark.skipif(not ROOT, reason="giving a file to another group needs root")
def test_a_factory_yaml_its_group_may_write_is_refused_when_others_are_in_the_group(cli: Any, tmp_path: Path) -> None:
    path = planted(tmp_path / "factory.yaml", tmp_path / "ran")
    gid = nobody()[1]  # nobody's primary group: someone else is in it
    os.chown(path, -1, gid)
    path.chmod(0o664)
    result = cli("--config", str(path), "config", "validate")
    assert result.exit_code == 3
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"factoryctl: {path} is writable by its group {grp.getgrgid(gid).gr_name} (gid {gid})")
    assert first.endswith(
        "(mode 0664), so someone else could choose the commands factoryctl runs as you; it is not read."
    )


def test_a_factory_yaml_writable_by_the_users_own_group_is_read(cli: Any, tmp_path: Path) -> None:
    """umask 002 with per-user groups (CI, many desktops) makes every file group-writable: that group is yours."""
    uid, gid = os.geteuid(), os.getegid()
    if not _group_is_the_owners_own(gid, uid, uid):
        pytest.skip("this user's primary group has other members here")
    path = planted(tmp_path / "factory.yaml", tmp_path / "ran")
    path.chmod(0o664)
    result = cli("--config", str(path), "config", "validate")
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_pipe_is_still_read(tmp_path: Path) -> None:
    path = planted(tmp_path / "factory.yaml", tmp_path / "ran")
    script = f'exec "$@" --config <(cat {path}) config validate'
    done = subprocess.run(["bash", "-c", script, "bash", *CLI], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.endswith(": ok, 1 node, 0 groups\n")


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_a_named_pipe_of_another_user_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "factory.yaml"
    os.mkfifo(fifo)
    os.chown(fifo, *nobody())
    done = subprocess.run(
        [*CLI, "--config", str(fifo), "config", "validate"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3
    assert done.stderr.startswith(f"factoryctl: {fifo} belongs to uid {nobody()[0]}, not root,")


def test_yaml_nested_thousands_deep_is_a_config_error_naming_the_file(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text("name: deep\nnodes:\n  n1:\n    sim: h100-sxm\n    labels: " + "[" * 5000 + "]" * 5000 + "\n")
    result = cli("--config", str(path), "config", "validate")
    assert (result.exit_code, result.stdout) == (3, "")
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"factoryctl: {path}:5:")
    assert lines[0].endswith(": malformed YAML: collections nested too deeply to read.")
    assert lines[1].startswith("hint: ")


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_under_sudo_the_file_of_the_user_who_ran_it_is_read(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sudo factoryctl -c ~/factory.yaml` was refused with a hint to give root the operator's own file."""
    path = tmp_path / "factory.yaml"
    path.write_text("name: mine\nnodes:\n  n1: {transport: local}\n")
    os.chown(path, *nobody())
    monkeypatch.setenv("SUDO_UID", str(nobody()[0]))
    assert cli("--config", str(path), "config", "validate").exit_code == 0
    monkeypatch.setenv("SUDO_UID", str(nobody()[0] - 1))  # someone else ran sudo: still another user's file
    assert cli("--config", str(path), "config", "validate").exit_code == 3
