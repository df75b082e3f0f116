"""A relative state_dir whose store an older factoryctl kept under the current directory (state_dir_moved.py).

Before 4abe9f9 `state_dir: st` meant `<cwd>/st`; now `<factory.yaml's directory>/st`. After the upgrade, drains and
history seemed lost and `controller run` / `nodes drain` silently began a new, empty store: now a warning names both
places and the move, and no writer creates the empty store.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from factoryctl import state_dir_moved

CONFIG = "name: moved25\nstate_dir: st\nnodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 2}\n"


@pytest.fixture(autouse=True)
def fresh_process_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test is a process of its own: nothing said or remembered yet."""
    monkeypatch.setattr(state_dir_moved, "_MOVED", {})
    monkeypatch.setattr(state_dir_moved, "_WARNED", set())


@pytest.fixture
def upgraded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., object]) -> tuple[Path, Path]:
    """(factory.yaml, the working directory) where the old factoryctl left a store with n1 drained under `st`."""
    conf, work = tmp_path / "conf", tmp_path / "work"
    conf.mkdir()
    work.mkdir()
    (conf / "factory.yaml").write_text(CONFIG)
    (work / "factory.yaml").write_text(CONFIG)  # the old meaning: the store under the working directory
    monkeypatch.chdir(work)
    assert cli("nodes", "drain", "n1", "--reason", "old").exit_code == 0  # type: ignore[attr-defined]
    (work / "factory.yaml").unlink()
    assert (work / "st" / "factory.db").is_file()
    return conf / "factory.yaml", work


def test_a_writer_refuses_to_start_an_empty_store_and_says_where_the_old_one_is(upgraded, cli) -> None:
    config, work = upgraded
    result = cli("-c", str(config), "nodes", "drain", "n1", "--reason", "new")
    assert result.exit_code != 0
    new, old = config.parent / "st" / "factory.db", work / "st" / "factory.db"
    assert not new.exists()
    assert f"there is no store at {new}, but there is one at {old}" in result.stderr
    assert f"mv {work / 'st'} {config.parent / 'st'}" in result.stderr
    assert "no new, empty store is made" in result.stderr


def test_the_warning_is_said_once_and_kept_under_quiet(upgraded, cli) -> None:
    config, _work = upgraded
    result = cli("-q", "-c", str(config), "nodes", "list")
    assert result.stderr.count("warning: state_dir 'st' is now taken from factory.yaml's directory") == 1


def test_the_move_it_names_brings_the_drain_back(upgraded, cli) -> None:
    config, work = upgraded
    cli("-c", str(config), "nodes", "list")  # a simulated node's state is made at the new place meanwhile
    new, old = config.parent / "st" / "factory.db", work / "st" / "factory.db"
    command = state_dir_moved.move_command(new, old)
    subprocess.run(["sh", "-c", command], check=True)
    state_dir_moved._WARNED.clear()
    result = cli("-c", str(config), "nodes", "list", "-o", "json")
    assert result.exit_code == 0
    assert "warning" not in result.stderr
    assert [row["drained"] for row in json.loads(result.stdout)["items"]] == [True]
    assert not old.exists()


@pytest.mark.parametrize("where", ["config-dir", "absolute"])
def test_nothing_is_said_when_nothing_moved(upgraded, cli, where: str) -> None:
    config, work = upgraded
    if where == "config-dir":
        os.chdir(config.parent)
        shutil.copytree(work / "st", config.parent / "st")
    else:
        config.write_text(CONFIG.replace("state_dir: st", f"state_dir: {work / 'st'}"))
    result = cli("-c", str(config), "nodes", "list")
    assert result.exit_code == 0
    assert "warning" not in result.stderr


def test_another_factorys_store_in_the_current_directory_is_left_alone(tmp_path: Path, monkeypatch, cli) -> None:
    conf, work = tmp_path / "conf", tmp_path / "work"
    conf.mkdir()
    work.mkdir()
    (conf / "factory.yaml").write_text(CONFIG)
    (work / "factory.yaml").write_text(CONFIG.replace("n1:", "m1:"))  # its own factory, the same `state_dir: st`
    monkeypatch.chdir(work)
    assert cli("nodes", "drain", "m1", "--reason", "theirs").exit_code == 0
    result = cli("-c", str(conf / "factory.yaml"), "nodes", "drain", "n1", "--reason", "ours")
    assert result.exit_code == 0, result.stderr
    assert "warning" not in result.stderr
    assert (conf / "st" / "factory.db").is_file()


def test_a_state_dir_of_dot_moves_only_the_store_files(tmp_path, monkeypatch):
    """`state_dir: .` named the current directory: the advice was `cp -a HOME/. NEW/ && rm -r HOME`."""
    from factoryctl import state_dir_moved

    home, conf = tmp_path / "home", tmp_path / "conf"
    home.mkdir()
    conf.mkdir()
    for name in ("factory.db", "factory.db-wal", "notes.txt"):
        (home / name).write_text("x")
    monkeypatch.chdir(home)
    command = state_dir_moved.move_command(conf / "factory.db", home / "factory.db")
    assert "rm " not in command
    assert command == f"mkdir -p {conf} && mv {home}/factory.db {home}/factory.db-wal {conf}/"
