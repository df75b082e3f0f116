"""A store migrated to a newer schema is said, and recorded as a `store_migrated` event.

From the moment a writer migrates the store (schema 3 -> 5, say), every older factoryctl sharing it refuses it
("written by a newer factoryctl"): an operator's CLI on another machine, a cron job, a dashboard of the old version.
It used to happen silently, so nobody could tell when or why they began to refuse. Now the migrating process says it
once: the controller in its log (a warning: kept at the default level), a one-shot command as a `note:` on stderr
(dropped under -q: the result is not wrong, docs/cli.md), and the store keeps an event that `events` lists.
A new store (schema 0: nothing in it yet) is created, not migrated: nothing is said.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
import time
from pathlib import Path

from factoryctl.store.lock_wait import execute_waiting
from factoryctl.store.rows import Event

log = logging.getLogger("factoryctl.store")

KIND = "store_migrated"


def migration_sentence(path: Path, before: int, after: int) -> str:
    """What happened to the store and what it means for the other factoryctl installs sharing it."""
    return (
        f"migrated the store at {path} from schema {before} to {after}: a factoryctl that knows only schema {before} "
        "no longer reads or writes it (upgrade every factoryctl sharing this store)"
    )


def record_migration(db: sqlite3.Connection, path: Path, before: int, after: int) -> None:
    """Say the migration and store its event (in a transaction of its own, after the migrations)."""
    from factoryctl.store.logs import insert_event  # logs builds on the connection, which calls this

    sentence = migration_sentence(path, before, after)
    say(sentence)  # first: an event that cannot be written (a full disk) fails the open, the migration done
    execute_waiting(db, "BEGIN IMMEDIATE")
    try:
        insert_event(db, Event(time.time(), KIND, sentence, severity="warning"))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def say(sentence: str) -> None:
    """The controller's log when it runs (its handler is set), else a `note:` on stderr unless -q was given."""
    from factoryctl.controller_log import QueuedStderr

    if any(isinstance(handler, QueuedStderr) for handler in logging.getLogger().handlers):
        log.warning("%s", sentence)
    elif not _quiet():
        print(f"note: {sentence}.", file=sys.stderr)


def _quiet() -> bool:
    """Whether the running command was given -q: the CLI's global options on Click's context (as textfile.py reads it).

    Click is looked up among the modules already loaded (Typer's copy, `typer._click`, or Click), never imported.
    """
    for name in ("typer._click.globals", "click.globals"):
        module = sys.modules.get(name)
        context = module.get_current_context(silent=True) if module is not None else None
        if context is not None:
            return bool(getattr(context.find_root().obj, "quiet", False))
    return False
