"""What TARGET completion needs from factory.yaml, cached so that a TAB does not parse thousands of nodes of YAML.

Every TAB runs factoryctl afresh. Parsing factory.yaml with the pure-Python YAML loader (kept because it gives line
and column positions) was 60-80% of a TAB at 2,000 nodes (0.7 s for a 10,000-line file; fish asked twice per TAB).
Completion needs only the `Inventory`: node names in order, each node's GPU count as `node/` completes it, which
nodes are simulated, the groups and their members. It is saved after `parse_config` (read by libyaml where it can
be, completion_inventory.py: the first TAB after an edit) and used again while factory.yaml's text is the same.

Never stale: the entry is used only when it was made from the same text, read the way `load_config` reads it (found,
its path length and its owner checked: a file `load_config` refuses gives no names), by the same factoryctl (version
and the stamp of the modules that expand names). The text's SHA-256 is in the key, not the file's mtime and size,
which an edit within one timestamp tick, or `touch -r`, leaves the same. The file is private to the user
(0600, written whole with a rename), read only when the user owns it and nobody else can write it; any problem with
it is a miss, never an error.

Its directory is trusted as the agent zipapp's cache is (`private_files.private_dir_problem`, missing ones made
0700), with every directory above it: another user who can write one could otherwise redirect the entries, and the
clean-up of old ones, into a directory of their choosing (a link planted in a shared `$XDG_CACHE_HOME`). Root keeps
no entry where the directory, or the first one above it that exists, is not root's: `su` keeps the user's
`$XDG_CACHE_HOME`, and a directory of root's there would leave the user's own caches unusable.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig

#: Raised when the entry's layout changes, so an older factoryctl's entries are misses.
FORMAT = 1
#: Entries not written for this long are removed when another is written (one file per factory.yaml path).
MAX_AGE_S = 30 * 86400


@dataclass(frozen=True)
class Inventory:
    """The inventory as completion uses it."""

    #: Node name -> its GPU count as `node/` completes it (`sim.gpus`, else `gpus`; None when not known), in order.
    nodes: dict[str, int | None]
    #: The simulated nodes (`sim:` in factory.yaml): the only ones `sim inject` accepts.
    simulated: frozenset[str]
    #: Group name -> its member nodes, in the file's order.
    groups: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, config: FactoryConfig) -> Inventory:
        """The completion view of a loaded factory."""
        nodes = {name: spec.sim.gpus if spec.sim is not None else spec.gpus for name, spec in config.nodes.items()}
        simulated = frozenset(name for name, spec in config.nodes.items() if spec.sim is not None)
        return cls(nodes, simulated, dict(config.groups))

    def as_json(self) -> dict[str, Any]:
        """The inventory as JSON values (`from_json` reads it back)."""
        nodes = [[name, gpus, name in self.simulated] for name, gpus in self.nodes.items()]
        return {"nodes": nodes, "groups": {group: list(members) for group, members in self.groups.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inventory:
        """Read `as_json`'s values back; a ValueError when they are not of that shape."""
        nodes: dict[str, int | None] = {}
        simulated = set()
        for name, gpus, sim in data["nodes"]:
            if not isinstance(name, str) or not (gpus is None or type(gpus) is int) or type(sim) is not bool:
                raise ValueError("not an inventory entry")
            nodes[name] = gpus
            if sim:
                simulated.add(name)
        groups = {str(group): tuple(str(member) for member in members) for group, members in data["groups"].items()}
        return cls(nodes, frozenset(simulated), groups)


def completion_inventory(explicit: Path | None) -> Inventory | None:
    """The inventory of the factory.yaml `load_config(explicit, pipes=False)` would read; None when it fails.

    From the cache when the text is the one the entry was made from, else parsed (completion_inventory.py) and saved.
    """
    from factoryctl.cli.completion_inventory import completion_config
    from factoryctl.config import read_config_source
    from factoryctl.errors import FactoryError

    try:  # as load_config reads it
        path, text = read_config_source(explicit, pipes=False)
    except (FactoryError, OSError):
        return None
    entry = _entry_path(path)
    key = _key(path, text)
    cached = _read_entry(entry, key)
    if cached is not None:
        return cached
    try:
        inventory = Inventory.of(completion_config(text, path))
    except (FactoryError, OSError):
        return None
    _write_entry(entry, key, inventory)
    return inventory


def cache_dir() -> Path:
    """`~/.cache/factoryctl/completion` (the XDG cache dir)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("factoryctl")) / "completion"


def _entry_path(path: Path) -> Path:
    """The entry for the factory.yaml at `path`: one per path, so an edit replaces it."""
    return cache_dir() / (hashlib.sha256(os.fsencode(os.path.abspath(path))).hexdigest()[:32] + ".json")


def _key(path: Path, text: str) -> str:
    """What the entry must have been made from: this format, this factoryctl, this path and this text."""
    import factoryctl
    from factoryctl import config, config_schema, targets

    digest = hashlib.sha256(f"{FORMAT}\0{factoryctl.__version__}\0".encode())
    for module in (config, config_schema, targets):  # an edited checkout expands names anew
        try:
            stamp = os.stat(module.__file__ or "")
            digest.update(f"{stamp.st_mtime_ns}:{stamp.st_size}\0".encode())
        except OSError:
            digest.update(b"-\0")
    digest.update(os.fsencode(os.path.abspath(path)) + b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


#: An entry larger than this is no entry of ours (one of 100,000 nodes is a few MB): not read.
MAX_ENTRY_BYTES = 64 << 20


def _ours_alone(status: os.stat_result) -> bool:
    """Whether a file or directory is the user's, and nobody else may write it."""
    return status.st_uid == os.geteuid() and not status.st_mode & 0o022


def _read_entry(entry: Path, key: str) -> Inventory | None:
    """The inventory saved in `entry` for `key`; None when there is none, or it is not ours alone or not readable.

    Only from a private directory (`_private_place`), and only a regular file, opened without following a link or
    waiting (a FIFO planted there held every TAB), and not larger than `MAX_ENTRY_BYTES`.
    """
    directory = _private_place(entry.parent)
    if directory is None:
        return None
    try:
        fd = os.open(directory / entry.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(handle.fileno())
            if not stat.S_ISREG(status.st_mode) or not _ours_alone(status) or status.st_size > MAX_ENTRY_BYTES:
                return None
            data = json.loads(handle.read())
        if data["key"] != key:
            return None
        return Inventory.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _write_entry(entry: Path, key: str, inventory: Inventory) -> None:
    """Save the inventory for `key`, whole or not at all (a rename), private to the user; failures are ignored.

    Only into a private directory (`_private_place`, missing ones made 0700), and not from a root shell sudo opened
    (`sudo -s` may keep the user's HOME) nor by root where the directory is not root's (`private_files.roots_place`):
    root's files in the user's cache dir would leave the user's own TABs, and zipapp cache, unable to use it.
    """
    from factoryctl.private_files import sudo_user

    if sudo_user() is not None:
        return
    directory = _private_place(entry.parent, make=True)
    if directory is None:
        return  # a directory someone else may write, or steer (a link they planted): nothing is kept there
    try:
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump({"key": key, **inventory.as_json()}, out, separators=(",", ":"))
            os.replace(temporary, directory / entry.name)
        except BaseException:
            os.unlink(temporary)
            raise
        _remove_old_entries(directory)
    except OSError:
        pass  # no cache: the next TAB parses again


def _private_place(directory: Path, *, make: bool = False) -> Path | None:
    """`directory` with its links resolved if it is private, as the agent zipapp's cache must be; else None.

    Links are resolved refusing one another user planted in a directory anyone may write (`resolve_trusted_links`);
    the resolved directory must be the user's alone and every one above it root's or the user's, not writable by
    others unless sticky (`private_dir_problem`). With `make`, missing directories are created 0700 first, not by
    root where they would be made in a directory that is not root's (`private_files.roots_place`).
    """
    from factoryctl.private_files import (
        PlantedLink,
        make_private_dirs,
        private_dir_problem,
        resolve_trusted_links,
        roots_place,
    )

    try:
        real = Path(resolve_trusted_links(directory))
        if make:
            if os.geteuid() == 0 and not roots_place(real):
                return None
            make_private_dirs(real)
        return real if private_dir_problem(real) is None else None
    except (OSError, PlantedLink):
        return None


#: The names of the entries and of their temporary files: nothing else in the directory is removed.
_OUR_NAMES = re.compile(r"[0-9a-f]{32}\.json|\..*\.tmp")


def _remove_old_entries(directory: Path) -> None:
    """Remove the entries (and left-over temporary files) not written for `MAX_AGE_S`; no other file."""
    old = time.time() - MAX_AGE_S
    for item in directory.iterdir():
        try:
            if _OUR_NAMES.fullmatch(item.name) and item.lstat().st_mtime < old:
                item.unlink()
        except OSError:
            continue
