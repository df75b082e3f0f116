"""A relative `state_dir` whose store stayed where an older factoryctl put it: said once, and no new store made.

Before 4abe9f9 (2026-11-23) a relative `state_dir: state` meant `<current directory>/state`; since, it means
`<factory.yaml's directory>/state` (config_schema.config_dir). An operator who upgraded and runs factoryctl from
another directory than factory.yaml's found drains and history gone, and `controller run` silently began a fresh,
empty store in the new place. So when the store is missing at the new place but there at the old one, parse_config
calls `note_moved_store`: a warning on stderr (once per process, kept under -q: a result may be wrong) names both
places and the `mv` to make, and `StoreConnection` asks `moved_from` before it would create a store (a writer
refuses) or say "there is no store yet" (a reader says where it is). Writing `state_dir` as an absolute path, or
moving the directory, ends it.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Collection
from pathlib import Path

STORE_NAME = "factory.db"

#: New store path -> the store path an older factoryctl used (this process's configs).
_MOVED: dict[Path, Path] = {}
_WARNED: set[Path] = set()


def old_store(written: str | None, base: Path | None, cwd: Path | None = None) -> tuple[Path, Path] | None:
    """(new store path, old store path) when `written` is relative and only the old place (cwd) has a store."""
    if not written or base is None or written.startswith("~") or os.path.isabs(written):
        return None
    try:  # getcwd fails in a deleted directory: there is no old place to look at then
        here = Path(os.path.abspath(cwd or os.getcwd()))
        if here == base:
            return None
        new, old = base / written / STORE_NAME, here / written / STORE_NAME
        if os.path.lexists(new) or not old.is_file():
            return None
    except OSError:  # a directory on the way we may not search: nothing to say
        return None
    return Path(os.path.abspath(new)), Path(os.path.abspath(old))


def move_command(new: Path, old: Path) -> str:
    """The shell command that moves the old state directory to the new place.

    A state_dir of `.` or `..` was the current directory or one above it, not a directory of factoryctl's own: only
    the store's files are moved then (moving the directory meant `rm -r` of the operator's home).
    """
    source, target = old.parent, new.parent
    if _holds_the_current_directory(source):
        files = [shlex.quote(str(f)) for f in sorted(source.glob(f"{STORE_NAME}*")) if f.is_file()]
        return f"mkdir -p {shlex.quote(str(target))} && mv {' '.join(files)} {shlex.quote(str(target))}/"
    if target.exists():  # made since (a simulated node's state): merged, the old files winning
        return f"cp -a {shlex.quote(str(source))}/. {shlex.quote(str(target))}/ && rm -r {shlex.quote(str(source))}"
    parent = target.parent
    make = "" if parent.exists() else f"mkdir -p {shlex.quote(str(parent))} && "
    return f"{make}mv {shlex.quote(str(source))} {shlex.quote(str(target))}"


def _holds_the_current_directory(directory: Path) -> bool:
    """Whether `directory` is the current directory or one above it (True when the current one cannot be read)."""
    try:
        here = Path(os.path.abspath(os.getcwd()))
    except OSError:
        return True
    return here == directory or directory in here.parents


def advice(new: Path, old: Path) -> str:
    """What to do: move the store, or name the old place in full."""
    return (
        f"move it: `{move_command(new, old)}` (with no controller running), or write "
        f"`state_dir: {old.parent}` in factory.yaml to keep it where it is."
    )


def note_moved_store(written: str | None, base: Path | None, nodes: Collection[str] = ()) -> None:
    """Remember and say (once) that the store factory.yaml's relative `state_dir` named is at its old place.

    Not when that store knows none of the config's `nodes` and some others: it is another factory's, whose
    factory.yaml sits in the current directory with the same `state_dir`.
    """
    found = old_store(written, base)
    if found is None or not _shares_a_node(found[1], nodes):
        return
    new, old = found
    _MOVED[new] = old
    if new in _WARNED:
        return
    _WARNED.add(new)
    print(
        f"warning: state_dir {written!r} is now taken from factory.yaml's directory ({new.parent}), not the current "
        f"directory: there is no store at {new}, but there is one at {old} (factoryctl before 2026-11-23); "
        + advice(new, old),
        file=sys.stderr,
    )


def _shares_a_node(store: Path, nodes: Collection[str]) -> bool:
    """Whether the store file has one of `nodes` or none at all; True when it cannot be told (no locks, no journal)."""
    import sqlite3
    import urllib.parse

    if not nodes:
        return True
    try:  # immutable: nothing is created or played back beside a store that may not be ours
        db = sqlite3.connect(f"file:{urllib.parse.quote(str(store))}?mode=ro&immutable=1", uri=True)
        try:
            known = {str(row[0]) for row in db.execute("SELECT name FROM node")}
        finally:
            db.close()
    except sqlite3.Error:
        return True
    return not known or not known.isdisjoint(nodes)


def moved_from(path: Path) -> Path | None:
    """The old store `path` replaces, if a config read in this process said so and it is still only there."""
    old = _MOVED.get(Path(os.path.abspath(path)))
    if old is None or os.path.lexists(path) or not old.is_file():
        return None
    return old
