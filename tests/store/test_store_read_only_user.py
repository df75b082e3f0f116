"""An operator with read access only (docs/controller.md: `chmod g+rX`) reads a store no controller has open.

A cleanly stopped controller leaves no `-wal`/`-shm` beside the store, and SQLite reads a WAL-mode file only if it
may create them. These tests read as a user without write access in a child process: as root, with setpriv dropping
the capabilities that let root write any file (the store's directory belonging to `nobody`); as any other user, with
the directory made read-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from clocks import sample
from nonroot import NOBODY, SETPRIV

from factoryctl.store.rows import AuditEntry, Event
from factoryctl.store.sqlite import Store

T0 = 1_700_000_040.0

pytestmark = pytest.mark.skipif(
    os.geteuid() == 0 and SETPRIV is None, reason="as root, dropping the right to write any file needs setpriv"
)


def deny_writes(state: Path) -> None:
    """Leave `state` readable but not writable by the reader `as_reader` starts (755 dirs, 644 files).

    The store is created private (0700, 0600): read access is granted here as docs/controller.md tells operators to.
    """
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
        else:
            path.chmod(0o555 if path.is_dir() else 0o444)


def allow_writes(state: Path) -> None:
    """Undo `deny_writes`: the writer's own files again (root's too: a state dir another user owns is refused)."""
    for path in [state, *state.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(path, 0, 0)
        else:
            path.chmod(0o755 if path.is_dir() else 0o644)


def as_reader(argv: list[str], stdin: int | None = None) -> subprocess.Popen[str]:
    """Start `argv` as a user who may read the store but not write it or its directory."""
    if os.geteuid() == 0:
        assert SETPRIV is not None
        caps = "-dac_override,-dac_read_search,-fowner"
        argv = [SETPRIV, "--inh-caps=-all", f"--bounding-set={caps}", "--", *argv]
    return subprocess.Popen(argv, text=True, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def read(argv: list[str]) -> tuple[int, str, str]:
    proc = as_reader(argv)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    """A store written and closed (as a cleanly stopped controller leaves it), readable but not writable."""
    state = tmp_path / "state"
    store = Store(state / "factory.db")
    store.write([sample("n1", T0 + s) for s in range(3)])
    store.add_events([Event(T0, "node_up", "n1 is up", node="n1")])
    store.add_audit([AuditEntry(T0, "n1", 0, "set", 700.0, 450.0, False, "root", "peak")])
    store.set_drained(["n1"], True, "fan", "root")
    store.close()
    assert sorted(p.name for p in state.iterdir()) == ["factory.db"]  # no -wal, no -shm
    deny_writes(state)
    yield state
    allow_writes(state)  # let pytest clean up


def test_the_reader_really_may_not_write(state: Path) -> None:
    code, _, err = read([sys.executable, "-c", f"open({str(state / 'probe')!r}, 'w')"])
    assert code == 1
    assert "PermissionError" in err


def test_a_reader_without_write_access_reads_a_store_no_writer_has_open(state: Path, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(f"state_dir: {state}\nnodes: {{n1: {{transport: local}}}}\n")
    base = [*CLI_ARGV, "--config", str(config)]
    since = ["--since", "2023-11-14T00:00Z"]
    code, out, err = read([*base, "telemetry", "history", "n1/0", *since, "-o", "json"])
    assert (code, err) == (0, "")
    assert [p["value"] for p in json.loads(out)["items"][0]["points"]] == [100.0, 100.0, 100.0]
    code, out, err = read([*base, "events", *since, "-o", "json"])
    assert (code, err) == (0, "")
    assert [e["kind"] for e in json.loads(out)["items"]] == ["node_up", "drain"]
    code, out, err = read([*base, "audit", *since, "-o", "json"])
    assert (code, err) == (0, "")
    assert [e["after_w"] for e in json.loads(out)["items"]] == [450.0]
    code, out, err = read([*base, "controller", "status"])
    assert code == 1  # none runs
    assert "newest sample: 2023-11-14T22:14:02.000Z" in out
    assert "read-only" not in err
    assert sorted(p.name for p in state.iterdir()) == ["factory.db"]  # the reader left nothing behind


READER = """
import sys
from pathlib import Path
from factoryctl.store.sqlite import Store
reader = Store(Path(sys.argv[1]), readonly=True)
for _ in range(2):
    points = reader.history(["n1"], "power_w", 0, 2e9)[0].points
    print(reader.immutable, len(points), flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def reading_twice(state: Path) -> Iterator[Callable[[], list[str]]]:
    """A reader process that has read once (as read-only user); call the result to have it read again."""
    reader = as_reader([sys.executable, "-c", READER, str(state / "factory.db")], stdin=subprocess.PIPE)
    assert reader.stdout is not None
    assert reader.stdin is not None
    out, into = reader.stdout, reader.stdin
    try:
        assert out.readline().split() == ["True", "3"]  # immutable: no writer has the store open

        def again() -> list[str]:
            into.write("\n")
            into.flush()
            return out.readline().split()

        yield again
    finally:
        reader.communicate("\n", timeout=60)
    assert reader.returncode == 0


def test_a_reader_opened_without_a_writer_sees_rows_a_writer_adds_later(state: Path) -> None:
    with reading_twice(state) as read_again:
        allow_writes(state)
        writer = Store(state / "factory.db")  # the controller starts: -wal and -shm appear, and new rows in the -wal
        writer.write([sample("n1", T0 + s) for s in range(3, 5)])
        assert read_again() == ["False", "5"]
        writer.close()


def test_a_reader_sees_what_a_writer_that_came_and_went_wrote(state: Path) -> None:
    """A writer that opens, writes and closes between two reads (collect --once, a drain) leaves no -wal behind:
    the immutable reader kept serving its cached pages of the old file (and could mix old and new pages)."""
    with reading_twice(state) as read_again:
        allow_writes(state)
        writer = Store(state / "factory.db")
        writer.write([sample("n1", T0 + s) for s in range(3, 6)])
        writer.close()
        deny_writes(state)
        assert sorted(p.name for p in state.iterdir()) == ["factory.db"]  # the writer left no log behind
        assert read_again() == ["True", "6"]


def test_a_log_the_reader_cannot_use_is_one_sentence(state: Path, tmp_path: Path) -> None:
    allow_writes(state)
    writer = Store(state / "factory.db")
    writer.write([sample("n1", T0 + 10)])  # a few pages: far below SQLite's automatic checkpoint (1,000)
    shutil.copy(f"{state}/factory.db-wal", tmp_path / "wal")  # the log as a killed controller leaves it
    assert (tmp_path / "wal").stat().st_size > 0  # the write is in it, not yet checkpointed into the file
    writer.close()
    shutil.copy(tmp_path / "wal", f"{state}/factory.db-wal")  # ... with its -shm lost
    deny_writes(state)
    code, _, err = read([sys.executable, "-c", READER, str(state / "factory.db")])
    assert code == 1
    assert "cannot be read by this user: its write-ahead log factory.db-wal needs a factory.db-shm file" in err
    assert "StoreError" in err
