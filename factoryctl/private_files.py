"""Whether someone other than the user could have written a file: OpenSSH's rule, shared by every file that steers us.

ssh refuses a config file another user could write ("Bad owner or permissions on FILE"), since whoever can change it
chooses where and as whom ssh connects. factory.yaml chooses even more (the commands run on `local` nodes), and
~/.ssh/config is checked too, so both go through this one rule, as readconf.c applies it on Debian and Ubuntu (the
`ssh` this project is tested against): the owner is the user or root, others cannot write the file, and its group
cannot either unless the group is the owner's own (its only member is the user, as with umask 002 and per-user
groups, so a test or CI run under umask 002 is not refused).

The files factoryctl writes (an output file, known_hosts, factory.yaml) follow the same trust the other way: a
symbolic link on the way to one is followed only if the user or root made it, or it sits in a directory that not
everyone may write (only its owner and group may make links there: `resolve_trusted_links`). The kernel's `fs.protected_symlinks` does not cover
a file written beside its target and renamed over it, which needs the target's path resolved first.

The caches factoryctl keeps on this machine (the agent zipapp's, completion's) are trusted as OpenSSH's secure_path
trusts a file: the directory is the user's and writable by nobody else, and every directory above it is root's or
the user's and not writable by others unless sticky (`private_dir_problem`), so nobody else can swap it or a
directory above it; missing ones are created 0700 (`make_private_dirs`), by root only inside a directory of root's
(`roots_place`).
"""

from __future__ import annotations

import errno
import functools
import grp
import os
import pwd
import shlex
import stat
from pathlib import Path


@functools.lru_cache(maxsize=64)
def _group_is_the_owners_own(gid: int, owner: int, uid: int) -> bool:
    """Whether group `gid`'s only member is the user (Debian's ssh then lets it write the file), as ssh counts them.

    Members are the accounts whose primary group it is and the names /etc/group lists; a group with none, or whose
    listed member is not the file's `owner`, does not count as the owner's own.
    """
    try:
        group, owner_name = grp.getgrgid(gid), pwd.getpwuid(owner).pw_name
    except KeyError:
        return False
    primary = [entry.pw_uid for entry in pwd.getpwall() if entry.pw_gid == gid]
    if any(member != uid for member in primary) or group.gr_mem not in ([], [owner_name]):
        return False
    return bool(primary or group.gr_mem)


def belongs_to_another(owner: int, uid: int) -> str:
    """`belongs to uid 1000, not root` (or `neither you (uid 1001) nor root`): why a file is not `uid`'s to trust."""
    return f"belongs to uid {owner}, " + ("not root" if uid == 0 else f"neither you (uid {uid}) nor root")


def who_else_can_write(path: str, status: os.stat_result, also: int | None = None) -> tuple[str, str] | None:
    """Why ssh would refuse a config file with this stat ("Bad owner or permissions"), with the fix; or None.

    `also` is one more owner to trust (the user who ran `sudo`: `sudo_user`).
    """
    uid, quoted = os.getuid(), shlex.quote(path)
    if status.st_uid not in (0, uid, also):
        problem = belongs_to_another(status.st_uid, uid)
        return problem, f"make it yours: `chown {uid} {quoted}` (and `chmod go-w {quoted}`), or move it aside."
    mode = stat.S_IMODE(status.st_mode)
    if mode & stat.S_IWOTH:
        return f"is writable by others (mode {mode:04o})", f"run `chmod go-w {quoted}`."
    if mode & stat.S_IWGRP and not _group_is_the_owners_own(status.st_gid, status.st_uid, uid):
        problem = f"is writable by its group {_group_and_members(status.st_gid, status.st_uid, uid)} (mode {mode:04o})"
        return problem, f"run `chmod go-w {quoted}`."
    return None


#: The most members a refusal names (a group such as `users` can have hundreds).
_NAMED_MEMBERS = 5


def _group_and_members(gid: int, owner: int, uid: int) -> str:
    """Group `gid` by name and gid, with who else is in it, counted as `_group_is_the_owners_own` counts them.

    Members are the names /etc/group lists and the users whose primary group it is; the file's owner and the user
    are not "others". A group without any is named so: ssh refuses it just the same.
    """
    try:
        group = grp.getgrgid(gid)
    except KeyError:
        return f"(gid {gid}, which is in no group database here)"
    accounts = pwd.getpwall()
    yours = {entry.pw_name for entry in accounts if entry.pw_uid in (owner, uid)}
    listed = [name for name in group.gr_mem if name not in yours]
    primary = [e.pw_name for e in accounts if e.pw_gid == gid and e.pw_name not in yours and e.pw_name not in listed]
    named = f"{group.gr_name} (gid {gid})"
    if listed or primary:
        parts = [_names(listed)] if listed else []
        parts += [f"users whose primary group it is: {_names(primary)}"] if primary else []
        return f"{named}, which has other members: {'; '.join(parts)}"
    if not group.gr_mem and not any(entry.pw_gid == gid for entry in accounts):
        return f"{named}, which has no members (ssh allows group write only for a group whose only member is you)"
    return f"{named} (ssh allows group write only for a group whose only member is you)"


def _names(names: list[str]) -> str:
    """At most `_NAMED_MEMBERS` of `names`, and how many more."""
    more = f" and {len(names) - _NAMED_MEMBERS} more" if len(names) > _NAMED_MEMBERS else ""
    return ", ".join(names[:_NAMED_MEMBERS]) + more


def sudo_user() -> int | None:
    """The uid of the user who ran factoryctl through `sudo` (root, `SUDO_UID` set), else None.

    Their own file gives root nothing they could not run as root already: `sudo factoryctl -c ~/factory.yaml` was
    refused with a hint to give root the operator's file. Only root's environment is read, which only sudo sets.
    """
    value = os.environ.get("SUDO_UID", "")
    if os.getuid() != 0 or not value.isascii() or not value.isdigit():
        return None
    return int(value) if int(value) != 0 else None


#: The most symbolic links followed on the way to one file, as Linux's path walk (then ELOOP).
_MOST_LINKS = 40


class PlantedLink(Exception):
    """A symbolic link on the way to a file, in a directory anyone may write, that neither the user nor root made.

    Whoever made it chose the file written through it (another user's file, or root's under `sudo`); `problem` says
    which link, for a sentence such as "cannot write the schedule to out.csv: {problem}.".
    """

    def __init__(self, link: str, directory: str, owner: int, uid: int) -> None:
        self.link = link
        self.problem = (
            f"{link} is a symbolic link in {directory}, where anyone may write, and {belongs_to_another(owner, uid)}: "
            "its owner chose the file it names"
        )
        super().__init__(self.problem)


def resolve_trusted_links(path: str | os.PathLike[str]) -> str:
    """`path` with every symbolic link resolved (as `os.path.realpath` does), refusing one another user could plant.

    A link is refused (`PlantedLink`) when its directory is writable by anyone (sticky as /tmp, or not) and the link
    belongs to neither the user nor root; a link in a directory only its owner and group may write is theirs to make,
    as the user's own link to a dotfiles repository is. A missing component is kept as written, as realpath keeps it;
    more than `_MOST_LINKS` links is OSError ELOOP. One walk both checks and resolves, so no link can be swapped
    between the two.
    """
    uid = os.geteuid()
    resolved = "/" if os.fspath(path).startswith("/") else os.getcwd()
    pending, followed = os.fspath(path).split("/"), 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        try:
            found = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            found = None  # nothing there to follow: the rest is read as written
        if found is None or not stat.S_ISLNK(found.st_mode):
            resolved = candidate
            continue
        followed += 1
        if followed > _MOST_LINKS:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), os.fspath(path))
        if found.st_uid not in (0, uid) and os.stat(resolved).st_mode & stat.S_IWOTH:
            raise PlantedLink(candidate, resolved, found.st_uid, uid)
        target = os.readlink(candidate)
        resolved = "/" if target.startswith("/") else resolved
        pending[:0] = target.split("/")
    return resolved


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents, mode 0700 (an existing one is left as it is)."""
    missing = [path for path in (directory, *directory.parents) if not os.path.lexists(path)]
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:  # made meanwhile by another process: checked as found
            continue


def first_existing(real: Path) -> tuple[Path, os.stat_result] | None:
    """The resolved directory `real`, or the first directory above it that exists, with its lstat; None if none."""
    for path in (real, *real.parents):
        try:
            return path, os.lstat(path)
        except FileNotFoundError:
            continue
    return None


def roots_place(real: Path) -> bool:
    """Whether the resolved directory `real`, or the first directory above it that exists, is root's.

    Root makes no missing cache directory elsewhere: `su` keeps the user's `$XDG_CACHE_HOME` (and no `SUDO_UID` says
    whose it is), and a directory root made there would be one the user can no longer write: their zipapp cache would
    be "not private" at every command, and their completion cache could not be made.
    """
    found = first_existing(real)
    return found is not None and found[1].st_uid == 0


def private_dir_problem(real: Path) -> str | None:
    """Why the resolved directory `real` is no private cache (like OpenSSH's secure_path), or None.

    It must be this user's and writable by nobody else; every directory above it must be root's or this user's and
    not writable by group or others unless sticky (like /tmp). Looked at with lstat: a symbolic link anywhere in
    `real` is refused (resolve it first: `resolve_trusted_links`, `os.path.realpath`).
    """
    uid = os.geteuid()
    info = os.lstat(real)
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != uid:
        return f"belongs to uid {info.st_uid}, not to this user (uid {uid})"
    if info.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    for parent in real.parents:
        info = os.lstat(parent)
        if info.st_uid not in (0, uid):
            return f"is inside {parent}, which belongs to uid {info.st_uid} (neither root nor this user)"
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return f"is inside {parent}, which is writable by group or others without the sticky bit"
    return None
