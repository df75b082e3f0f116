"""Paths a user gives that the system cannot use for their length alone: a config error, said where they arrive.

A file name over NAME_MAX (255 bytes) or a path over PATH_MAX makes every `stat()` fail with ENAMETOOLONG, which
`Path.exists()` raises: unchecked, such a path in `--config`, `init` or `state_dir` ended as "unexpected error"
deep in whichever command first looked at it. SQLite has a lower limit of its own (a file path of 505 bytes or
more), which bounds `state_dir`. Messages keep a huge path short (`shown_path`).
"""

from __future__ import annotations

import os
from pathlib import Path

from factoryctl.errors import ConfigError

#: The longest state_dir (its absolute path, in bytes): SQLite opens no file whose path is 505 bytes or more, and
#: the longest file of the store is `<state_dir>/factory.db-wal` (15 bytes more).
MAX_STATE_DIR_BYTES = 489


def check_path_length(path: Path, what: str, hint: str, max_bytes: int | None = None) -> None:
    """Raise ConfigError (exit 3) when `path` cannot be used for its length alone (ENAMETOOLONG, SQLite's limit).

    Checked where a path from the user first arrives, so no command meets the error later as an OSError from
    `exists()` or `open()`. `max_bytes` defaults to the system's PATH_MAX less its NUL.
    """
    raw = os.fsencode(path)
    name_max, path_max = _path_limits()
    longest = max(raw.split(b"/"), key=len)
    limit = path_max - 1 if max_bytes is None else max_bytes
    if len(longest) > name_max:
        problem = f"a name in it is {len(longest)} bytes long, over the system's limit of {name_max}"
    elif len(raw) > limit:
        problem = f"it is {len(raw)} bytes long, over the {limit} it may have"
    else:
        return
    raise ConfigError(f"{what} cannot be used: {problem} ({shown_path(path)}).", hint)


def _path_limits() -> tuple[int, int]:
    """(NAME_MAX, PATH_MAX) of the root file system: 255 and 4096 on Linux."""
    try:
        return os.pathconf("/", "PC_NAME_MAX"), os.pathconf("/", "PC_PATH_MAX")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - no pathconf (Windows)
        return 255, 4096


def shown_path(path: Path | str, keep: int = 120) -> str:
    """`path` for a message: a path longer than `keep` characters keeps its start and its end around `...`."""
    text = str(path)
    if len(text) <= keep:
        return text
    head = keep * 2 // 3
    return f"{text[:head]}...{text[-(keep - head) :]}"
