"""A rollback journal another user planted beside the store is refused, by writers and by readers alike.

In the review another user of a shared sticky state_dir planted `factory.db-journal`: SQLite took it for an
interrupted transaction and played it back into the store at the next writer's open, so they chose the store's
whole contents, audit log included. Only `-wal` and `-shm` were checked. And root's SQLite gives a `-journal` (or
`-wal`) it opens, a reader's open too, to the store's owner: a root reader made the planted journal root's, which
the writer's check would then have trusted.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest

from factoryctl.store.sqlite import Store, StoreError

ROOT = os.geteuid() == 0
NOBODY = 65534
WHO = "not root" if ROOT else f"neither you (uid {os.geteuid()}) nor root"
JOURNAL_MAGIC = b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"


def _hot_journal(pages_of: Path, journal: Path) -> None:
    """Write at `journal` a rollback journal whose playback puts every page of the file `pages_of` in the store."""
    data = pages_of.read_bytes()
    page_size = int.from_bytes(data[16:18], "big") or 65536
    count, nonce, sector = len(data) // page_size, 0x12345678, 512
    header = (JOURNAL_MAGIC + struct.pack(">IIIII", count, nonce, count, sector, page_size)).ljust(sector, b"\0")
    records = []
    for number in range(count):
        page = data[number * page_size : (number + 1) * page_size]
        checksum = nonce + sum(page[i] for i in range(page_size - 200, 0, -200))
        records.append(struct.pack(">I", number + 1) + page + struct.pack(">I", checksum & 0xFFFFFFFF))
    journal.write_bytes(header + b"".join(records))


def _who(store: Path) -> str:
    """The `who` meta value in the store file as it is on disk (nothing beside it read)."""
    with sqlite3.connect(f"file:{store}?mode=ro&immutable=1", uri=True) as db:
        return str(db.execute("SELECT value FROM meta WHERE key = 'who'").fetchone()[0])


@pytest.fixture
def shared(tmp_path: Path) -> Path:
    """A sticky state directory anyone may write (as /tmp), with a store whose `who` is `real`, closed cleanly."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o1777)
    store = Store(state / "factory.db")
    store.set_meta("who", "real")
    store.close()
    return state


@pytest.fixture
def planted(shared: Path, tmp_path: Path) -> Path:
    """`shared` with another user's hot journal beside the store, which would make its `who` `forged`."""
    forged = tmp_path / "forged.db"
    shutil.copy(shared / "factory.db", forged)
    with sqlite3.connect(forged) as db:
        db.execute("PRAGMA journal_mode = DELETE")
        db.execute("UPDATE meta SET value = 'forged' WHERE key = 'who'")
    db.close()
    _hot_journal(forged, shared / "factory.db-journal")
    if ROOT:
        os.chown(shared / "factory.db-journal", NOBODY, NOBODY)
    return shared


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_another_users_journal_is_refused_and_the_store_keeps_its_rows(planted: Path, readonly: bool) -> None:
    journal = planted / "factory.db-journal"
    with pytest.raises(StoreError) as caught:
        Store(planted / "factory.db", readonly=readonly)
    assert caught.value.message == (
        f"{journal} belongs to uid {NOBODY}, {WHO}, so writing it could write a file someone else chose; it is not "
        "opened."
    )
    assert f"`mv {journal} " in str(caught.value.hint)
    assert _who(planted / "factory.db") == "real"
    assert journal.stat().st_uid == NOBODY  # root's SQLite never opened it (it would have made it root's)


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_a_reader_first_does_not_make_the_journal_one_the_writer_trusts(planted: Path) -> None:
    with pytest.raises(StoreError):
        Store(planted / "factory.db", readonly=True)
    with pytest.raises(StoreError, match=re.escape(f"factory.db-journal belongs to uid {NOBODY}")):
        Store(planted / "factory.db")
    assert _who(planted / "factory.db") == "real"


@pytest.mark.parametrize("readonly", [False, True], ids=["writer", "reader"])
def test_a_linked_journal_is_refused(shared: Path, tmp_path: Path, readonly: bool) -> None:
    (shared / "factory.db-journal").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StoreError, match=re.escape("factory.db-journal is a symbolic link")):
        Store(shared / "factory.db", readonly=readonly)
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.skipif(not ROOT, reason="giving a file to another user needs root")
def test_a_reader_reads_another_users_store_and_its_own_files_in_a_shared_directory(shared: Path) -> None:
    """The files beside a store that belong to the store's owner are its own: reading another user's store works."""
    for name in ("factory.db", "factory.db-wal"):
        (shared / name).touch()
        os.chown(shared / name, NOBODY, NOBODY)
    store = Store(shared / "factory.db", readonly=True)
    assert store.get_meta("who") == "real"
    store.close()


def test_a_reader_in_a_private_directory_reads_as_before(tmp_path: Path) -> None:
    """Only where anyone may write are the files beside the store checked for a reader: elsewhere nothing changes."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    Store(state / "factory.db").close()
    (state / "factory.db-journal").symlink_to(tmp_path / "elsewhere")
    Store(state / "factory.db", readonly=True).close()
