"""The rules that make a node's agent cache private, and the words of each refusal (`agent_cache` applies them).

A cache directory is refused when another user of the node could replace what runs from it: a symbolic link, not
the login user's, group/other-writable, or under a directory that is neither root's nor the login user's or is
writable by others without the sticky bit (OpenSSH's secure_path). `agent_cache` reads the node (over SFTP, or the
no-SFTP probe's `ls -l` verdicts of `agent_cache_probes.CAT_PROBE`) and decides what is reused or uploaded; the rules
and their messages are kept here, apart from that I/O, so both paths refuse alike and agent_cache.py stays short.
"""

from __future__ import annotations

import shlex
import stat
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from factoryctl.errors import NodeError

if TYPE_CHECKING:
    import paramiko

#: Overrides the agent cache directory on the nodes, factory.yaml's `ssh.remote_cache_dir` included (relative paths
#: start at the login directory).
REMOTE_CACHE_ENV = "FACTORYCTL_REMOTE_CACHE"


def shown_dir(directory: str) -> str:
    """A cache path as the operator wrote it: relative paths start at the login directory."""
    if directory.startswith("/"):
        return directory
    return "~" if directory == "." else f"~/{directory}"


def refuse_dir(node: str, directory: str, problem: str, fix: str) -> NodeError:
    """The refusal of the cache `directory` for `problem`, with `fix` (`{dir}` in it: the directory, shell-quoted)."""
    shown = shown_dir(directory)
    return NodeError(
        node,
        "agent",
        f"the agent cache directory {shown} on the node {problem}, so another user could replace the agent.",
        f"{fix.replace('{dir}', shlex.quote(shown))}, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a "
        "directory only the login user can write.",
    )


def refuse_symlink(node: str, directory: str) -> NodeError:
    """The refusal of a cache directory that is a symbolic link."""
    return refuse_dir(
        node, directory, "is a symbolic link",
        "on the node, replace the link with a directory of the login user (`rm {dir} && mkdir -m 700 {dir}`)",
    )  # fmt: skip


def parent_problem(path: str, mode: int, owner: int | None, uid: int) -> tuple[str, str] | None:
    """Why the parent directory `path` (lstat `mode`, `owner`) makes the cache unsafe, with its fix; or None.

    Like OpenSSH's secure_path: every directory above the cache must belong to root or the login user and must
    not be writable by group or others unless it is sticky (like /tmp). A symbolic link among them is allowed if root
    or the login user owns it (the directory it points to is checked too, through the resolved path).
    """
    quoted = shlex.quote(path)
    if owner not in (0, uid):
        what = "a symbolic link" if stat.S_ISLNK(mode) else "a directory"
        return (
            f"is inside {path}, {what} that belongs to uid {owner} (neither root nor the login user)",
            f"on the node, `chown` {quoted} to root or the login user",
        )
    if stat.S_ISLNK(mode):
        return None
    if not stat.S_ISDIR(mode):
        return f"is inside {path}, which is not a directory", f"on the node, check {quoted}"
    if mode & 0o022 and not mode & stat.S_ISVTX:
        return (
            f"is inside {path}, which is writable by group or others without the sticky bit "
            f"(mode {stat.S_IMODE(mode):04o})",
            f"on the node, `chmod go-w {quoted}` (or `chmod +t {quoted}` if it is shared like /tmp)",
        )
    return None


def ancestors(path: str) -> list[str]:
    """`/a/b/c` -> [`/a/b`, `/a`, `/`] (lexically, as written)."""
    return [str(parent) for parent in PurePosixPath(path).parents]


def check_private_dir(node: str, directory: str, attrs: paramiko.SFTPAttributes, uid: int) -> None:
    """Refuse a cache directory that is a symlink or not a directory, not the login user's, or g/o-writable.

    `attrs` come from lstat, so a symbolic link is seen as one.
    """
    mode = attrs.st_mode or 0
    if stat.S_ISLNK(mode):
        raise refuse_symlink(node, directory)
    if not stat.S_ISDIR(mode):
        raise NodeError(
            node,
            "agent",
            f"the agent cache {shown_dir(directory)} on the node is not a directory.",
            f"remove it on the node, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a private directory.",
        )
    if attrs.st_uid != uid:
        raise refuse_dir(
            node, directory, f"belongs to uid {attrs.st_uid}, not to the login user (uid {uid})",
            "on the node, `chown` it to the login user (then `chmod 700 {dir}`)",
        )  # fmt: skip
    if mode & 0o022:
        raise refuse_dir(
            node, directory, f"is writable by group or others (mode {stat.S_IMODE(mode):04o})",
            "make it private on the node with `chmod go-w {dir}`",
        )  # fmt: skip


def reusable(attrs: paramiko.SFTPAttributes, size: int, uid: int) -> bool:
    """A cached zipapp is run only if it is a regular file of the right size, the login user's, and not g/o-writable."""
    mode = attrs.st_mode or 0
    return stat.S_ISREG(mode) and attrs.st_size == size and attrs.st_uid == uid and not mode & 0o022


def _ls_type(text: str) -> int:
    """The file type and permission bits of an `ls -l` mode string (`lrwxrwxrwx` -> S_IFLNK | 0o777)."""
    return {"d": stat.S_IFDIR, "l": stat.S_IFLNK, "-": stat.S_IFREG}.get(text[:1], 0) | _ls_mode(text)


def _ls_mode(text: str) -> int:
    """The permission bits of an `ls -l` mode string (`drwxrwxrwt` -> 0o1777)."""
    bits = 0
    for i, char in enumerate(text[1:10].ljust(9, "-")):
        if char not in "-ST":
            bits |= 1 << (8 - i)
        if i in (2, 5, 8) and char in "sStT":
            bits |= {2: 0o4000, 5: 0o2000, 8: 0o1000}[i]
    return bits


def cat_refusal(node: str, directory: str, word: str, detail: str, about: str) -> NodeError | None:
    """The refusal `CAT_PROBE`'s verdict calls for (`word detail` on its first line, the directory after), if any."""
    if word == "symlink":
        return refuse_symlink(node, directory)
    if word == "notdir":
        return NodeError(
            node,
            "agent",
            f"the agent cache {shown_dir(directory)} on the node is not a directory.",
            f"remove it on the node, or set ssh.remote_cache_dir (or ${REMOTE_CACHE_ENV}) to a private directory.",
        )
    if word == "owner":
        return refuse_dir(
            node, directory, "does not belong to the login user",
            "on the node, `chown` it to the login user (then `chmod 700 {dir}`)",
        )  # fmt: skip
    if word == "mode":
        return refuse_dir(
            node, directory, f"is writable by group or others (mode {_ls_mode(detail):04o})",
            "make it private on the node with `chmod go-w {dir}`",
        )  # fmt: skip
    if word in ("powner", "pmode", "pnotdir"):
        owner, _, shown_mode = detail.rpartition(" ")
        # `powner`: the owner is neither root nor the login user (-1 stands for the latter, unknown here)
        problem = parent_problem(about, _ls_type(shown_mode), int(owner) if owner.isdigit() else 0, -1)
        if problem:
            return refuse_dir(node, directory, *problem)
    return None
