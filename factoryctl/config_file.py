"""Reading factory.yaml's bytes: only a file the user could have written alone, never a device, never without end.

factory.yaml chooses the commands factoryctl runs (a `local` node's `python:`) and the files it writes (state_dir,
known_hosts) as whoever invokes it, so a file another user could have written would run their code as you (as root, for `sudo
factoryctl` in a shared directory). It is refused as ssh refuses such a ~/.ssh/config (private_files.py): owned by
you or root, writable by nobody else (by its group only when that group is yours alone). This holds however the
file was found (--config, $FACTORYCTL_CONFIG, ./factory.yaml, the XDG dir): each can name a file in a shared place.
A pipe (`--config <(sops -d factory.yaml)`) belongs to whoever made it, the invoking shell, and passes the same rule.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from factoryctl.errors import ConfigError, UsageError
from factoryctl.private_files import sudo_user, who_else_can_write

#: factory.yaml is read up to this size (100,000 nodes in sets are a few MB; this bounds a pipe that never ends).
MAX_CONFIG_BYTES = 64 << 20


def read_config_text(path: Path, source: str, pipes: bool) -> str:
    """The text of the factory.yaml at `path` (found by `source`), refused unless only the user could have written it.

    A pipe is read unless `pipes` is false, as for shell completion, which must neither block on one nor eat what it
    carries. A directory or a device is refused.
    """
    if not path.exists():
        if source == "XDG config dir":  # the last place tried: ./factory.yaml was missing too
            hint = "run `factoryctl init` to write an example in the current directory, or pass --config FILE."
            raise ConfigError(f"no factory.yaml in the current directory or at {path}.", hint)
        hint = f"`factoryctl init {shlex.quote(str(path))}` writes an example there."  # as `config locate` says
        raise ConfigError(f"no factory.yaml at {path} (looked in: {source}).", hint)
    if not (path.is_file() or (pipes and path.is_fifo())):  # /dev/zero would be read for ever (and hang a TAB)
        raise ConfigError(
            f"{path} is not a regular file, so it is not read as factory.yaml.",
            "pass --config FILE with your factory.yaml, or run `factoryctl init` to write one.",
        )
    from factoryctl.textfile import decode_utf8

    try:
        _refuse_unless_private(path, os.stat(path))  # before opening: a named pipe of another user's would block
        with path.open("rb") as handle:
            _refuse_unless_private(path, os.fstat(handle.fileno()))  # the file read, whatever the path names now
            data = handle.read(MAX_CONFIG_BYTES + 1)  # a pipe may never end: `-c <(yes)` ate all memory
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(
                f"{path} holds more than {MAX_CONFIG_BYTES >> 20} MiB, far more than any factory.yaml.",
                "check that --config names your factory.yaml.",
            )
        return decode_utf8(data, str(path), "factory.yaml")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}.", "check the file's permissions.") from exc
    except UsageError as exc:  # not UTF-8: a config error (exit 3), naming the line like every other loader
        raise ConfigError(exc.message, exc.hint) from None


def _refuse_unless_private(path: Path, status: os.stat_result) -> None:
    """ConfigError (exit 3) for a factory.yaml someone other than the user (or root) could have written."""
    refused = who_else_can_write(str(path), status, also=sudo_user())
    if refused is not None:
        raise ConfigError(
            f"{path} {refused[0]}, so someone else could choose the commands factoryctl runs as you; it is not read.",
            refused[1],
        )
