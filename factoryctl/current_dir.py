"""The current directory, which may have been deleted under the shell that runs factoryctl.

A shell keeps its directory after `rm -rf` of it from elsewhere; `os.getcwd()` then fails with ENOENT, and every
command crashed with `unexpected error: FileNotFoundError` and the hint to report it. Discovery now skips
./factory.yaml there (there is none: the directory is gone) and goes on to the XDG config dir; a relative path given
by the user (`-c ../f.yaml`, `init`'s default ./factory.yaml) cannot be found from a directory that does not exist,
and is refused in one sentence that says so.
"""

from __future__ import annotations

from pathlib import Path

from factoryctl.errors import FactoryError

#: What to do when the current directory is gone.
CWD_GONE_HINT = "cd to a directory that exists (`cd ~`), or give the path in full (from /)."


def current_dir() -> Path | None:
    """The current directory, or None when it no longer exists (deleted) or cannot be read."""
    try:
        return Path.cwd()
    except OSError:  # FileNotFoundError once deleted; EACCES for a directory above it we may not read
        return None


def require_current_dir(path: Path, named: str, error: type[FactoryError], after: str = "") -> Path:
    """`path`, unless it is relative and the current directory it is taken from no longer exists (`error` then).

    `named` says what the path is (`--config`); `after` ends the sentence (`; nothing was written`).
    """
    if path.is_absolute() or current_dir() is not None:
        return path
    raise error(
        f"{named} {path} is relative to the current directory, which no longer exists (deleted?){after}.",
        CWD_GONE_HINT,
    )
