"""A store moved away (`mv factory.db factory.db.moved`) under the controller is said to be deleted or moved, with how to
keep its rows: they are in the `-wal` left at the old path, which the moved file needs beside it.

The controller said only "was deleted", and the moved copy, without its `-wal`, read as an empty store; restarted,
the controller's new store deleted that `-wal`, and the rows with it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from reaping import reaped
from store_rows import NODE_SAMPLES_SQL, count_while_created
from waiting import wait_for

pytestmark = pytest.mark.slow


def test_a_moved_store_is_said_moved_and_the_hint_keeps_its_rows(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    state = tmp_path / "state"
    config.write_text(
        f"name: ctl\nstate_dir: {state}\ncontroller: {{interval_s: 0.5}}\n"
        "nodes:\n  n1: {transport: local, sim: h100-sxm, gpus: 2}\n"
    )
    store, moved = state / "factory.db", state / "factory.db.moved"
    argv = [*CLI_ARGV, "--config", str(config), "controller", "run"]
    with reaped(subprocess.Popen(argv, stderr=subprocess.PIPE)) as proc:
        wait_for(lambda: count_while_created(store, NODE_SAMPLES_SQL, "n1") >= 4, timeout=60, what="samples")
        store.rename(moved)  # mv factory.db factory.db.moved
        _, err = proc.communicate(timeout=30)
    said = err.decode()
    assert proc.returncode == 1, said
    assert f"the store {store} was deleted while the controller ran, or moved; " in said
    assert "hint: a store is moved together with its -wal and -shm files, with the controller stopped; " in said
    assert f"its newest rows are in {store}-wal, still here: move it and factory.db-shm beside the moved file " in said
    assert count_while_created(moved, NODE_SAMPLES_SQL, "n1") == 0  # the moved file alone lacks them
    for suffix in ("-wal", "-shm"):  # as the hint says
        Path(f"{store}{suffix}").rename(f"{moved}{suffix}")
    assert count_while_created(moved, NODE_SAMPLES_SQL, "n1") >= 4


def test_a_deleted_store_with_its_files_gets_no_move_hint(tmp_path: Path) -> None:
    from factoryctl.controller import _moved_store_hint

    store = tmp_path / "factory.db"
    assert _moved_store_hint(store, "deleted") == ""  # `rm factory.db*`: nothing left to move
    Path(f"{store}-wal").write_bytes(b"")
    assert _moved_store_hint(store, "replaced") == ""  # a file swapped in: its own -wal is another matter
    assert _moved_store_hint(store, "deleted").startswith(" hint: a store is moved together with its -wal and -shm")
