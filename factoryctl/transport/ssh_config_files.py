"""Reading ~/.ssh/config and the files its Include lines name, with the checks OpenSSH makes before it reads them.

ssh refuses a config file that someone else could have written ("Bad owner or permissions on FILE"): such a file
can point HostName, User or ProxyJump anywhere. factoryctl refuses the same files, so it never connects where ssh
would not, and says which file and how to fix it. The rule is readconf.c's, as Debian's and Ubuntu's ssh apply it
(the `ssh` this project is tested against): the owner is the user or root, others cannot write it, and the group
cannot either unless the group is the owner's own (its only member is the user, as with umask 002 and per-user
groups). ~/.ssh/config itself is checked, and every included file; like `ssh -F`, a config path given explicitly
(SshOptions.ssh_config) is not, while the files it includes are.
"""

from __future__ import annotations

import functools
import glob
import grp
import itertools
import os
import pwd
import re
import shlex
import stat
import time
from dataclasses import dataclass

from factoryctl.errors import ConfigError

#: Files nest through Include at most this deep (OpenSSH's READCONF_MAX_DEPTH): a file including itself fails.
MAX_INCLUDE_DEPTH = 16
CONFIG_HINT = "fix the file or move it aside."
#: An Include line, found in a whole file's text at once (no newline inside; lines are split at \n as paramiko does).
_INCLUDE = re.compile(r"^[^\S\n]*include(?:[^\S\n]*=[^\S\n]*|[^\S\n]+)(.*\S)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class ConfigSource:
    """A config file's text and, by the number of each of its Include lines, the files that line includes (read)."""

    path: str
    text: str
    includes: tuple[tuple[int, tuple[ConfigSource, ...]], ...] = ()


def _include_paths(value: str, where: str) -> list[str]:
    """The files an Include line names, found as OpenSSH does: each glob's matches, sorted; relative to ~/.ssh."""
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: cannot read SSH config: Include {value!r}: {exc}.", CONFIG_HINT) from None
    paths: list[str] = []
    for word in itertools.takewhile(lambda word: not word.startswith("#"), words):
        pattern = os.path.expanduser(word)
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
        paths.extend(sorted(glob.glob(pattern)))
    return paths


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


def _who_else_can_write(path: str, status: os.stat_result) -> tuple[str, str] | None:
    """Why ssh would refuse a config file with this stat ("Bad owner or permissions"), with the fix; or None."""
    uid, quoted = os.getuid(), shlex.quote(path)
    if status.st_uid not in (0, uid):
        allowed = "not root" if uid == 0 else f"neither you (uid {uid}) nor root"
        problem = f"belongs to uid {status.st_uid}, {allowed}"
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


def _refuse_unless_private(path: str, status: os.stat_result, where: str) -> None:
    """ConfigError (exit 3) for a file ssh would refuse; `where` is the Include line that names it, if any."""
    refused = _who_else_can_write(path, status)
    if refused is None:
        return
    what = f"{where}: the included file {path}" if where else f"{path}: the SSH config"
    raise ConfigError(
        f"{what} {refused[0]}, so someone else could change where and as whom factoryctl connects; ssh refuses "
        "it too (Bad owner or permissions).",
        refused[1],
    )


#: Config files' texts by path, with the (inode, size, mtime, ctime) they were read at.
_TEXTS: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def _read(path: str, where: str, private: bool) -> str:
    """The text of `path`, read again only when it changed: a 2,000-node fleet resolves it once per node.

    A file whose ctime was under a second old when read is read again next time: a change within the same clock
    tick could leave its stat as it was. A directory raises IsADirectoryError (ssh skips one an Include matches).
    With `private`, a file others could write is refused: on every call (a chmod or chown changes the ctime, so the
    text is then read again) and on the opened file's own status, as ssh checks it.
    """
    status = os.stat(path)
    cached = _TEXTS.get(path)
    if cached is not None and cached[0] == _stamp(status):
        if private:
            _refuse_unless_private(path, status, where)
        return cached[1]
    with open(path, "rb") as file:
        status = os.fstat(file.fileno())
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(path)
        if private:
            _refuse_unless_private(path, status, where)
        text = file.read().decode(errors="replace")
    if time.time_ns() - status.st_ctime_ns > 1_000_000_000:
        _TEXTS[path] = (_stamp(status), text)
    return text


def _stamp(status: os.stat_result) -> tuple[int, int, int, int]:
    return (status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def load_config_file(path: str, private: bool = True, depth: int = 0, where: str = "") -> ConfigSource | None:
    """Read `path` and, recursively, the files its Include lines name; None if it is missing or a directory.

    As for OpenSSH, an Include that matches no file is no error, one that matches a file it cannot read is, and
    files nest at most MAX_INCLUDE_DEPTH deep (a file that includes itself). `where` is the including line.
    `private`: refuse `path` if someone else could write it, as ssh does; included files always are.
    """
    if depth > MAX_INCLUDE_DEPTH:
        raise ConfigError(
            f"{where}: Include nests files more than {MAX_INCLUDE_DEPTH} deep.",
            "look for a file that includes itself, directly or through another.",
        )
    try:
        text = _read(path, where, private)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        problem = f"cannot read the included file {path}" if where else "cannot read SSH config"
        raise ConfigError(f"{where or path}: {problem}: {exc.strerror or exc}.", CONFIG_HINT) from None
    includes: list[tuple[int, tuple[ConfigSource, ...]]] = []
    for match in _INCLUDE.finditer(text):
        number = text.count("\n", 0, match.start()) + 1
        here = f"{path}, line {number}"
        loaded = [load_config_file(name, True, depth + 1, here) for name in _include_paths(match.group(1), here)]
        includes.append((number, tuple(source for source in loaded if source is not None)))
    return ConfigSource(path, text, tuple(includes))
