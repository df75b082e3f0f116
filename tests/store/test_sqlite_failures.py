"""The table of SQLite failures (`sqlite_failures`): each known failure said with its sentence and hint.

Errors are real ones from SQLite where SQLite can be made to raise them here; the others are built from the text
SQLite uses, as an older Python (without `sqlite_errorname`) sees them.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from factoryctl.store.connection import StoreDamaged, StoreError
from factoryctl.store.sqlite import Store
from factoryctl.store.sqlite_failures import FAILURES, UNKNOWN, Failure, Situation, classify, primary_code

needs_errorname = pytest.mark.skipif(sys.version_info < (3, 11), reason="sqlite_errorname is Python 3.11+")


def situation(path: Path, error: sqlite3.Error, immutable: bool = False) -> Situation:
    return Situation(path, "samples", error, readonly=False, immutable=immutable, busy_timeout_s=10.0)


def said(path: Path, error: sqlite3.Error, immutable: bool = False) -> tuple[str, str]:
    s = situation(path, error, immutable)
    failure = classify(s)
    return failure.message.format(s=s), failure.hint.format(s=s)


def caught(action: object) -> sqlite3.Error:
    try:
        action()  # type: ignore[operator]
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite raised nothing")


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    path = tmp_path / "factory.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x BLOB)")
    db.commit()
    db.close()
    return path


def not_a_database(path: Path) -> sqlite3.Error:
    path.write_bytes(b"this is not sqlite" * 100)
    db = sqlite3.connect(path)
    try:
        return caught(lambda: db.execute("SELECT * FROM sqlite_master"))
    finally:
        db.close()


def read_only(path: Path) -> sqlite3.Error:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return caught(lambda: db.execute("INSERT INTO t VALUES (1)"))
    finally:
        db.close()


def full(path: Path) -> sqlite3.Error:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA max_page_count = 4")
        return caught(lambda: db.execute("INSERT INTO t VALUES (zeroblob(100000))"))
    finally:
        db.close()


def locked(path: Path) -> sqlite3.Error:
    holder = sqlite3.connect(path, isolation_level=None)
    waiter = sqlite3.connect(path, timeout=0)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        return caught(lambda: waiter.execute("SELECT * FROM t"))
    finally:
        waiter.close()
        holder.close()


def cannot_open(path: Path) -> sqlite3.Error:
    return caught(lambda: sqlite3.connect(path.parent / "missing" / "factory.db"))


def test_a_damaged_file_is_store_damaged(db_path: Path) -> None:
    failure = classify(situation(db_path, not_a_database(db_path)))
    assert failure.damaged


def test_a_damaged_file_under_an_immutable_reader_was_changed_while_read(db_path: Path) -> None:
    assert said(db_path, not_a_database(db_path), immutable=True) == (
        f"the store at {db_path} changed while it was being read.",
        "run the command again.",
    )


def test_a_read_only_store_says_who_needs_write_access(db_path: Path) -> None:
    assert said(db_path, read_only(db_path)) == (
        f"the store at {db_path} is read-only for this user, so the samples were not saved.",
        f"give this user write access to {db_path} and its directory (owner and mode, no `chattr +i`, not a "
        "read-only mount), or set state_dir in factory.yaml.",
    )


def test_a_full_store_says_what_to_free(db_path: Path) -> None:
    assert said(db_path, full(db_path)) == (
        f"the store at {db_path} is full (the disk or the database size limit), so the samples were not saved.",
        "free disk space, or shorten controller.raw_retention in factory.yaml.",
    )


def test_a_locked_store_names_the_busy_timeout(db_path: Path) -> None:
    assert said(db_path, locked(db_path)) == (
        f"the store at {db_path} stayed locked by another writer for 10 s, so the samples were not saved.",
        "another factoryctl is writing; retry, or check with `factoryctl controller status` that it is not stuck.",
    )


def test_a_store_that_cannot_be_opened_names_its_directory(db_path: Path) -> None:
    assert said(db_path, cannot_open(db_path)) == (
        f"cannot open the store at {db_path}.",
        f"check that {db_path.parent} exists and this user may read it (and write it, to change the store).",
    )


def test_a_path_too_long_for_sqlite_says_so(db_path: Path) -> None:
    long = db_path.parent / ("d" * 250) / ("f" * 250) / "factory.db"
    message, hint = said(long, cannot_open(db_path))
    assert f"its path is {len(str(long))} bytes long, and SQLite opens no file whose path is 505 bytes" in message
    assert hint == "set a shorter state_dir in factory.yaml (or a shorter XDG_STATE_HOME)."


def test_a_bare_disk_io_error_on_a_writable_store_is_said_in_sqlites_words(db_path: Path) -> None:
    assert said(db_path, sqlite3.OperationalError("disk I/O error")) == (
        f"the store at {db_path} failed (samples): disk I/O error.",
        "rerun with --debug for details.",
    )


def test_an_unknown_failure_is_said_in_sqlites_words(db_path: Path) -> None:
    error = caught(lambda: sqlite3.connect(db_path).execute("SELECT * FROM nowhere"))
    assert classify(situation(db_path, error)) is UNKNOWN


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("file is not a database", 1),
        ("database disk image is malformed", 1),
        ("attempt to write a readonly database", 2),
        ("database or disk is full", 4),
        ("database is locked", 6),
        ("database table is locked", 6),
        ("unable to open database file", 8),
    ],
)
def test_without_a_result_code_the_text_is_matched(db_path: Path, text: str, index: int) -> None:
    assert classify(situation(db_path, sqlite3.OperationalError(text))) is FAILURES[index]


@needs_errorname
@pytest.mark.parametrize(
    ("make", "index"),
    [(not_a_database, 1), (read_only, 2), (full, 4), (locked, 6), (cannot_open, 8)],
)
def test_with_a_result_code_the_code_is_matched_whatever_the_text(db_path: Path, make: object, index: int) -> None:
    error = make(db_path)  # type: ignore[operator]
    assert error.sqlite_errorname.startswith(FAILURES[index].codes)
    error.args = ("words no row knows",)
    assert classify(situation(db_path, error)) is FAILURES[index]


@needs_errorname
def test_the_store_says_a_real_full_error_by_its_code(db_path: Path) -> None:
    store = Store(db_path.parent / "store.db")
    try:
        error = full(db_path)
        error.args = ("words no row knows",)
        said = store._error("samples", error)
        assert not isinstance(said, StoreDamaged)
        assert isinstance(said, StoreError)
        assert "is full" in said.message
    finally:
        store.close()


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("SQLITE_IOERR_WRITE", "SQLITE_IOERR"),
        ("SQLITE_READONLY_DBMOVED", "SQLITE_READONLY"),
        ("SQLITE_FULL", "SQLITE_FULL"),
        ("garbage", None),
        (None, None),
    ],
)
def test_an_extended_code_is_reduced_to_its_primary_code(name: str | None, code: str | None) -> None:
    error = sqlite3.OperationalError("x")
    if name is not None:
        error.sqlite_errorname = name
    assert primary_code(error) == code


def test_the_file_system_is_asked_once_per_failure(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Path] = []
    import factoryctl.store.sqlite_failures as failures

    def counted(path: Path, readonly: bool) -> bool:
        asked.append(path)
        return False

    monkeypatch.setattr(failures, "write_denied", counted)
    error = sqlite3.OperationalError("disk I/O error")
    error.sqlite_errorname = "SQLITE_IOERR_WRITE"  # matched by code, then by text: the answer is kept
    assert classify(situation(db_path, error)) is UNKNOWN
    assert asked == [db_path]


def test_every_row_is_recognisable_both_ways() -> None:
    for failure in FAILURES:
        assert isinstance(failure, Failure)
        assert failure.codes
        assert failure.words
        assert all(code.startswith("SQLITE_") and code.count("_") == 1 for code in failure.codes)
        assert all(word == word.lower() for word in failure.words)
