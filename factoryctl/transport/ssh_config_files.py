"""Reading ~/.ssh/config and the files its Include lines name, with the checks OpenSSH makes before it reads them.

ssh refuses a config file that someone else could have written ("Bad owner or permissions on FILE"): such a file
can point HostName, User or ProxyJump anywhere. factoryctl refuses the same files, so it never connects where ssh
would not, and says which file and how to fix it. The rule is readconf.c's, as Debian's and Ubuntu's ssh apply it
(private_files.py, shared with factory.yaml): the owner is the user or root, others cannot write it, and the group
cannot either unless the group is the owner's own (its only member is the user, as with umask 002 and per-user
groups). ~/.ssh/config itself is checked, and every included file; like `ssh -F`, a config path given explicitly
(SshOptions.ssh_config) is not, while the files it includes are.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shlex
import stat
import time
from dataclasses import dataclass

from factoryctl.errors import ConfigError
from factoryctl.private_files import who_else_can_write

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
        if "\0" in word:  # no file can be named so; glob raised ValueError, a node's "embedded null byte"
            raise ConfigError(
                f"{where}: cannot read SSH config: Include {value!r}: a file name cannot contain a NUL character.",
                CONFIG_HINT,
            )
        pattern = os.path.expanduser(word)
        if not os.path.isabs(pattern):
            pattern = os.path.join(os.path.expanduser("~/.ssh"), pattern)
        paths.extend(sorted(glob.glob(pattern)))
    return paths


def _refuse_unless_private(path: str, status: os.stat_result, where: str) -> None:
    """ConfigError (exit 3) for a file ssh would refuse; `where` is the Include line that names it, if any."""
    refused = who_else_can_write(path, status)
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
