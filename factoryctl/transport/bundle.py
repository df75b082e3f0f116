"""Build the agent zipapp the transports ship to nodes: `<user cache>/factoryctl-agent-<hash>.pyz`.

The archive holds `factoryctl/__init__.py`, `factoryctl/agent/**`, `factoryctl/sim/**` and the installed
nvidia-ml-py's pure-Python `pynvml.py` at its root, plus a `__main__.py`, so a node needs only `python3` (>= 3.9)
and, for real GPUs, the NVIDIA driver. The name carries a hash of every bundled file: it is built on first use,
reused while nothing changes, and rebuilt when an agent or simulator source or pynvml changes. Building writes a
temporary file and renames it into place, so concurrent first uses never see a half-written archive. A new build
in the cache removes the other builds' zipapps there older than a week (`bundle_prune`): one per agent change
piled up for good.

A long-running process (the controller, a dashboard, `metrics serve`) pins the members' bytes when it starts
(`pin_contents`, called by `stale_code.freeze_code`): an upgrade replaces the files under it while its own code stays
in memory, and an agent it started after that, built from the new files, spoke another protocol (every node failed
with `the agent speaks protocol 2, this factoryctl speaks 1`) or ran code this process was not written against.
Pinned, every agent it starts ships exactly the code it started with, under that code's own hash (the zipapp of a
process started since sits beside it in the cache). The checks below hold for the pinned bytes alike: they are the
bytes an archive is compared with.

The cached file is shipped to every node and run there as the SSH user, so it is trusted only as OpenSSH's
secure_path trusts a file: the cache directory must be this user's and writable by nobody else, every directory
above it root's or this user's and not writable by others unless sticky, a symbolic link on the way followed only if
this user or root made it or it sits in a directory not everyone may write (another user's link would choose where
the zipapp is written), and the file a regular file of this user that nobody else can write; its bytes must also be
the ones this factoryctl builds (checked once per process and file: building in memory takes about 20 ms). A cache
that is not private is not used at all: the zipapp is built in a private temporary directory for the run instead,
with a warning. So is one that cannot be created or written (a read-only home under a systemd unit's
`ProtectHome=read-only`, a full disk), and one root would have to make inside a directory that is not root's (`su`
keeps the user's `$XDG_CACHE_HOME`: a directory of root's there would leave the user's own cache unusable); a cache
the zipapp could not be written into is not tried again by this process, so each agent start does not build the
archive for nothing. Only when the temporary directory fails too is the agent not built: one sentence naming both
directories, and a hint, for each node (never an OSError's text).

The temporary directory sits in a shared place (/tmp), whose cleaner may remove it while a controller runs; its name
is in the warning, so another user could then make a directory of that name and swap the zipapp between its check
and its start. So it is held open from the moment it is made: the zipapp is written, checked and read for upload
through `/proc/self/fd/<fd>/`. A local agent is run by the directory's name only while that name is checked, just
before, to still lead to it (`runnable`: a node's `sudo python3` closes the descriptors it inherits), else through
the descriptor it then inherits (`pinned_fds`). Each use re-checks the held directory (still there, this user's, private); one that is
gone or changed is replaced by a new temporary directory, with a warning again. Where the system has no
`/proc/self/fd`, the name is used, and each use checks that it is still the directory made.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import stat
import tempfile
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import factoryctl
from factoryctl.errors import FactoryError
from factoryctl.private_files import (
    PlantedLink,
    first_existing,
    make_private_dirs,
    private_dir_problem,
    resolve_trusted_links,
    roots_place,
)
from factoryctl.transport.bundle_files import os_reason, own_file, read_no_follow, write_replacing
from factoryctl.transport.bundle_prune import prune_old_zipapps

BUNDLE_FORMAT = "2"  # bump when the archive's layout changes
_MAIN = (
    "# factoryctl agent zipapp entry point (kept to syntax any Python 3 can parse, to refuse old ones clearly)\n"
    "import sys\n\n"
    "if sys.version_info < (3, 9):\n"
    "    sys.stderr.write('factoryctl-agent needs Python >= 3.9; %s is %s\\n' % (sys.executable, sys.version.split()[0]))\n"
    "    sys.exit(3)\n\n"
    "from factoryctl.agent.main import main\n\n"
    "sys.exit(main())\n"
)
_ZIP_DATE = (2020, 1, 1, 0, 0, 0)  # fixed timestamps: the same sources give the same bytes

log = logging.getLogger("factoryctl.transport")

#: One build or check at a time in this process (a fan-out starts many agents at once).
_LOCK = threading.Lock()
#: Cached zipapps whose bytes were checked, by path: the file's identity then (device, inode, size, times).
_VERIFIED: dict[Path, tuple[int, ...]] = {}


@dataclass(frozen=True)
class _Fallback:
    """A private temporary directory used instead of the cache, held open (`fd`) from the moment it was made.

    `shown`: its name, for messages only; `via`: the path every use goes through (`/proc/self/fd/<fd>`, else
    `shown`); `ident`: its device and inode.
    """

    shown: Path
    fd: int
    via: Path
    ident: tuple[int, int]


#: The private temporary directory used instead of a cache that is not private or not writable (made on first use,
#: replaced when gone or changed, removed at exit); the last is the one in use. Replaced ones stay open: a local
#: agent about to start may still hold a path through one's descriptor number, which must not name another directory.
_FALLBACK: list[_Fallback] = []
#: Cached zipapps that could not be written, by path: why (`cannot be written (Read-only file system)`).
_UNWRITABLE: dict[Path, str] = {}

#: What the zipapp holds besides its entry point: (archive name, bytes) of each member, read at once.
_Contents = list[tuple[str, bytes]]
#: The members as read when this long-running process started (`pin_contents`); None: read at each agent start.
_PINNED: _Contents | None = None


#: By the kind of problem `_cache_place` found with a cache: what it means, and what to do.
_ADVICE = {
    "unwritable": ("", "let this user write it, or set XDG_CACHE_HOME to a directory it can write"),
    "unsafe": (
        ", so another user could replace the agent",
        "make the cache a directory of yours that only you can write, or set XDG_CACHE_HOME to one",
    ),
    "planted": ("", "set XDG_CACHE_HOME to a directory of yours that only you can write"),
    "not root's": ("", "unset XDG_CACHE_HOME, as `su -` does, or set it to a directory of root's"),
}

#: What to do when the agent can be built neither in the cache nor in a temporary directory.
_NOWHERE_HINT = (
    "set XDG_CACHE_HOME to a directory this user can write (under systemd, the unit's CacheDirectory=: "
    "docs/controller.md, Install with systemd)."
)


class _NotWritten(Exception):
    """Writing the zipapp failed: `problem` says why, as a sentence's predicate (`cannot be written (...)`)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def _package_root() -> Path:
    return Path(factoryctl.__file__).resolve().parent


def _pynvml_source() -> Path:
    spec = importlib.util.find_spec("pynvml")
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        raise RuntimeError("nvidia-ml-py (pynvml.py) is not installed; reinstall factoryctl")
    return Path(spec.origin)


def bundle_members() -> list[tuple[str, Path]]:
    """(archive name, source file) of everything the zipapp holds, in a stable order."""
    root = _package_root()
    members = [("factoryctl/__init__.py", root / "__init__.py")]
    for sub in ("agent", "sim"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file() and path.suffix in (".py", ".csv", ".json") and "__pycache__" not in path.parts:
                members.append((f"factoryctl/{sub}/{path.relative_to(root / sub).as_posix()}", path))
    members.append(("pynvml.py", _pynvml_source()))
    return members


def pin_contents() -> None:
    """Read every member now: from here on this process's zipapp holds these bytes, whatever the files become.

    For a long-running process, at its start (module docstring). A few ms and 0.6 MB, held for the process's life;
    a second call keeps the first bytes. Members that cannot be read (pynvml gone) pin nothing: each agent start
    then fails to build the agent as it would have, said for each node, instead of the process failing to start.
    """
    global _PINNED
    try:
        contents = _contents(bundle_members())
    except (OSError, RuntimeError):
        return
    with _LOCK:
        if _PINNED is None:
            _PINNED = contents


def _contents(members: list[tuple[str, Path]]) -> _Contents:
    return [(name, path.read_bytes()) for name, path in members]


def _current() -> _Contents:
    """What this process's zipapp holds: the pinned bytes (`pin_contents`), else the members' bytes on disk now."""
    pinned = _PINNED
    return pinned if pinned is not None else _contents(bundle_members())


def bundle_hash(members: list[tuple[str, Path]] | None = None) -> str:
    """A short hash of the bundle's contents (format, names and bytes of every member); by default this process's."""
    return _hash(_current() if members is None else _contents(members))


def _hash(contents: _Contents) -> str:
    digest = hashlib.sha256(BUNDLE_FORMAT.encode())
    for name, data in contents:
        digest.update(name.encode() + b"\0" + data + b"\0")
    return digest.hexdigest()[:16]


def default_cache_dir() -> Path:
    """The per-user cache directory (XDG via platformdirs)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("factoryctl"))


def build_archive(members: list[tuple[str, Path]]) -> bytes:
    """The zipapp's bytes: a `#!` line, then the archive (the same members always give the same bytes)."""
    return _archive(_contents(members))


def _archive(contents: _Contents) -> bytes:
    buffer = io.BytesIO()
    buffer.write(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("__main__.py", _ZIP_DATE), _MAIN, zipfile.ZIP_DEFLATED)
        for name, data in contents:
            archive.writestr(zipfile.ZipInfo(name, _ZIP_DATE), data, zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def agent_zipapp(cache_dir: Path | None = None) -> Path:
    """The path of this process's agent zipapp, building it first if it is missing, out of date or not trusted.

    Its bytes are the pinned ones in a long-running process (`pin_contents`), else the members' on disk now, read
    once for both the name's hash and the archive (a file changing meanwhile cannot give a name another's bytes).

    The path is resolved (no symbolic link in it) and its directory is private (module docstring): another user can
    neither have planted the file nor replace it before it is shipped. A cache that is not private, or cannot be
    created or written, gives way to a private temporary directory, reached through the descriptor that holds it
    (`/proc/self/fd/<fd>/...`: `pinned_fds`, `shown_path`); FactoryError when that cannot take it either.
    """
    directory = cache_dir if cache_dir is not None else default_cache_dir()
    with _LOCK:  # read under it too: agents starting at once on 64 nodes held 64 copies of the files (+12 MiB)
        contents = _current()
        name = f"factoryctl-agent-{_hash(contents)}.pyz"
        place, problem, kind = _cache_place(directory)
        if place is not None and place / name in _UNWRITABLE:
            problem, kind = _UNWRITABLE[place / name], "unwritable"
        elif place is not None:
            built = not os.path.lexists(place / name)
            try:
                zipapp = _checked(place / name, contents)
            except _NotWritten as failed:
                _UNWRITABLE[place / name] = problem = failed.problem
                kind = "unwritable"
            else:
                if built:  # a new build: the other builds' zipapps older than a week go (bundle_prune)
                    log.debug("removed old agent zipapps from %s: %s", place, prune_old_zipapps(place, name))
                return zipapp
        fallback = _fallback_dir(directory, problem, kind)
        try:
            return _checked(fallback.via / name, contents)
        except _NotWritten as failed:
            raise FactoryError(
                f"the agent was not built: its cache {directory} {problem}, and the temporary directory "
                f"{fallback.shown} {failed.problem}.",
                _NOWHERE_HINT,
            ) from None


def _checked(target: Path, contents: _Contents) -> Path:
    """`target`, written (or rewritten) with the zipapp of `contents` unless it holds those checked bytes already."""
    found = own_file(target)
    if found is not None and _VERIFIED.get(target) == found:
        return target
    expected = _archive(contents)
    try:
        if found is None or read_no_follow(target) != expected:
            write_replacing(target, expected)
            found = own_file(target)
    except OSError as exc:
        raise _NotWritten(f"cannot be written ({os_reason(exc)})") from exc
    if found is not None:
        _VERIFIED[target] = found
    return target


def _cache_place(directory: Path) -> tuple[Path | None, str, str]:
    """`directory` resolved (created 0700 where missing) if private; else None, why not, and its kind (`_ADVICE`).

    Its links are resolved first, refusing one another user planted in a directory anyone may write ("planted":
    `resolve_trusted_links`), so the zipapp is not written where they chose. Root makes no missing directory inside
    one that is not root's ("not root's": `roots_place`, a user's `$XDG_CACHE_HOME` kept by `su`). "unsafe": it is
    there but not private (`private_dir_problem`); "unwritable": it could not be created or looked at.
    """
    try:
        real = Path(resolve_trusted_links(directory))
        if os.geteuid() == 0 and not roots_place(real) and not os.path.lexists(real):
            return None, _not_roots(real), "not root's"
        make_private_dirs(real)
        problem = private_dir_problem(real)
    except PlantedLink as planted:
        return None, f"is reached through a symbolic link another user made: {planted.problem}", "planted"
    except OSError as exc:
        return None, f"cannot be written ({os_reason(exc)})", "unwritable"
    return (real, "", "") if problem is None else (None, problem, "unsafe")


def _not_roots(real: Path) -> str:
    """Why root makes no cache at the missing `real`, whose first directory that exists is not root's."""
    found = first_existing(real)
    where = f" in {found[0]}, which belongs to uid {found[1].st_uid}" if found is not None else ""
    return f"does not exist, and root makes no directory{where} (it would leave that user's own cache unusable)"


def _fallback_dir(directory: Path, problem: str, kind: str) -> _Fallback:
    """The private temporary directory used instead of the cache `directory` (which `problem`), made on first use.

    Its first warning says what to do about the cache, by the `kind` of its problem (`_ADVICE`). Re-checked on
    every use (`_fallback_problem`): one gone or changed is replaced by a new one, with a warning.
    FactoryError when no temporary directory can be made, or the one made is not private either.
    """
    if _FALLBACK:
        current = _FALLBACK[-1]
        changed = _fallback_problem(current)
        if changed is None:
            return current
        _forget(current)
        made = _make_fallback(directory, problem)
        log.warning(
            "the temporary directory %s the agent was built in %s; it is built in %s for the rest of this run instead.",
            current.shown,
            changed,
            made.shown,
        )
        return made
    made = _make_fallback(directory, problem)
    why, fix = _ADVICE[kind]
    log.warning(
        "the agent cache %s %s%s; it is built in %s for this run instead (%s).",
        directory,
        problem,
        why,
        made.shown,
        fix,
    )
    return made


def _make_fallback(directory: Path, problem: str) -> _Fallback:
    """A new private temporary directory, held open, its removal at exit registered (the cache `directory` `problem`).

    Its parents are checked by name once, right after it is made; from then on it is reached through its descriptor.
    """
    try:
        shown = Path(os.path.realpath(tempfile.mkdtemp(prefix="factoryctl-agent-")))
        fd = os.open(shown, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # gettempdir's own failure names every directory it tried
        where = f" in {tempfile.tempdir}" if tempfile.tempdir else ""
        raise FactoryError(
            f"the agent was not built: its cache {directory} {problem}, and no temporary directory could be "
            f"made{where} ({os_reason(exc)}).",
            _NOWHERE_HINT,
        ) from None
    info = os.fstat(fd)
    pinned = Path(f"/proc/self/fd/{fd}")
    made = _Fallback(shown, fd, pinned if _is_dir(pinned, info) else shown, (info.st_dev, info.st_ino))
    atexit.register(_remove_fallback, made)
    if private_dir_problem(shown) is not None or _fallback_problem(made) is not None:
        raise FactoryError(
            f"the agent was not built: its cache {directory} {problem}, and the temporary directory "
            f"{shown.parent} is not private either.",
            "set XDG_CACHE_HOME (or TMPDIR) to a directory only you can write.",
        )
    _FALLBACK.append(made)
    return made


def _is_dir(path: Path, info: os.stat_result) -> bool:
    """Whether `path` leads to the directory `info` describes (`/proc/self/fd/<fd>` does where the system has it)."""
    try:
        found = os.stat(path)
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (info.st_dev, info.st_ino)


def _fallback_problem(fallback: _Fallback) -> str | None:
    """What is wrong with the temporary directory `fallback` now (a sentence's predicate), or None if still usable.

    The held directory must still be there (a cleaner of /tmp may have removed it), this user's and writable by
    nobody else. Reached by name (no `/proc/self/fd`), the name must still be that directory, not a link.
    """
    try:
        info = os.fstat(fallback.fd)
        named = os.lstat(fallback.shown) if fallback.via == fallback.shown else info
    except FileNotFoundError:
        return "is gone (removed by a cleaner of temporary files?)"
    except OSError as exc:
        return f"cannot be checked ({os_reason(exc)})"
    if info.st_nlink == 0:
        return "is gone (removed by a cleaner of temporary files?)"
    if (named.st_dev, named.st_ino) != fallback.ident:
        return "was removed, and something else was made under its name"
    if info.st_uid != os.geteuid():
        return f"belongs to uid {info.st_uid} now"
    if info.st_mode & 0o022:
        return f"is writable by group or others now (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _forget(fallback: _Fallback) -> None:
    """Drop what was learnt of the zipapps in `fallback` (its descriptor stays open: see `_FALLBACK`)."""
    for known in (_VERIFIED, _UNWRITABLE):
        for path in [path for path in known if path.parent == fallback.via]:
            del known[path]


def _remove_fallback(fallback: _Fallback) -> None:
    """At exit: empty the held directory through its descriptor, then remove its name if that is still it."""
    with contextlib.suppress(OSError):
        for entry in os.listdir(fallback.fd):
            with contextlib.suppress(OSError):
                os.unlink(entry, dir_fd=fallback.fd)
        if _still_named(fallback):
            os.rmdir(fallback.shown)
    with contextlib.suppress(OSError):
        os.close(fallback.fd)


def _still_named(fallback: _Fallback) -> bool:
    """Whether the held directory's name still leads to it (not gone, not another directory or a link made there)."""
    try:
        named = os.lstat(fallback.shown)
    except OSError:
        return False
    return stat.S_ISDIR(named.st_mode) and (named.st_dev, named.st_ino) == fallback.ident


def _held_for(zipapp: Path) -> _Fallback | None:
    """The held temporary directory `zipapp` is reached through (`/proc/self/fd/<fd>`), if it is."""
    return next((f for f in _FALLBACK if f.via != f.shown and zipapp.parent == f.via), None)


def pinned_fds(zipapp: Path) -> tuple[int, ...]:
    """The descriptor a process running `zipapp` must inherit: the held temporary directory's, if it is reached so."""
    held = _held_for(zipapp)
    return () if held is None else (held.fd,)


def runnable(zipapp: Path) -> tuple[Path, tuple[int, ...]]:
    """How a local agent runs `zipapp`: the path to give its Python, and the descriptors it must inherit for that.

    A zipapp in the held temporary directory is run by that directory's name while the name still leads to it
    (checked just before): a node's `python` that is a wrapper closing inherited descriptors (`sudo`, `doas`,
    `conda run`) found no `/proc/self/fd/<fd>` there, and the agent did not start. While our directory is at that
    name no other user can put another one there (it is ours and private, in a directory they cannot rename in).
    Once the name leads elsewhere (a cleaner removed it, another user made one), only the descriptor reaches it.
    """
    held = _held_for(zipapp)
    if held is not None and _still_named(held):
        return held.shown / zipapp.name, ()
    return zipapp, pinned_fds(zipapp)


def shown_path(zipapp: Path) -> Path:
    """`zipapp` under its directory's name, for a person (who has no `/proc/self/fd/<fd>` of this process)."""
    held = _held_for(zipapp)
    return zipapp if held is None else held.shown / zipapp.name
