"""Checks of factory.yaml beyond its schema, and of the paths that name it, kept out of config.py to keep it short.

Each turns a mistake that would otherwise surface later, and misleadingly, into a config error at load time: a
`~` nobody expanded (`-c '~/lab.yaml'` would name a directory called `~`), a state_dir that is a file ("there is no
store at .../afile/factory.db"), a GPU count given twice.
"""

from __future__ import annotations

import os
from pathlib import Path

from factoryctl.config_schema import NodeEntry, SimSettings
from factoryctl.errors import ConfigError, FactoryError
from factoryctl.pathlimits import MAX_STATE_DIR_BYTES, check_path_length

Loc = tuple[str | int, ...]
Positions = dict[Loc, tuple[int, int, int, int]]


def expand_home(path: Path, named: str, error: type[FactoryError] = ConfigError) -> Path:
    """`path` with a leading `~` or `~user` expanded, as the shell and factory.yaml's own paths do.

    A quoted `'~/lab.yaml'` (or one from $FACTORYCTL_CONFIG) reached factoryctl as typed and named a directory `~` in
    the current one, which `init` then created. `./~` still names that directory. A `~user` with no such user (or a
    `~` without a home) is `error`, naming `named`: it could only be a typo.
    """
    text = str(path)
    if not text.startswith("~"):
        return path
    expanded = os.path.expanduser(text)
    if expanded.startswith("~"):
        user = text[1:].split("/", 1)[0]
        why = f"there is no user `{user}`" if user else "there is no home directory"
        hint = f"write the full path (./{text} for a directory really named so)."
        raise error(f"{named} {text} starts with `~`, but {why} to expand it with.", hint)
    return Path(expanded)


def check_state_dir(path: Path, written: bool, positions: Positions, where: str) -> None:
    """A state_dir must fit SQLite's limit when written in factory.yaml (a default one, the system's) and be a directory.

    A default dir over SQLite's limit but within the system's leaves every command that never opens the store
    (`exec`, `config validate`) working; one the system cannot even look at would fail every command with an
    OSError, so it is said here, once. A state_dir (or a directory on its way) that is a file passed `validate` and
    then read as "there is no store at .../afile/factory.db yet": said here, at the key, for every command.
    """
    line, col = positions.get(("state_dir",), (0, 0, 0, 0))[2:] if written else (0, 0)
    at = f"{where}:{line}:{col}: " if line else ""
    if not written:
        check_path_length(
            path, "the default state directory", "set state_dir in factory.yaml, or a shorter XDG_STATE_HOME."
        )
    else:
        hint = f"choose a state_dir of at most {MAX_STATE_DIR_BYTES} bytes, each name at most 255."
        check_path_length(path, f"{at}state_dir", hint, MAX_STATE_DIR_BYTES)
    blocking = _file_on_the_way(path)
    if blocking is None:
        return
    what = f"{at}state_dir {path}" if written else f"the default state directory {path}"
    named = "is a file" if blocking == path else f"cannot be made: {blocking} is a file"
    fix = "set state_dir to a directory" if written else "set state_dir in factory.yaml to a directory"
    raise ConfigError(f"{what} {named}, not a directory.", f"{fix} (the store and simulated GPU state go there).")


def _file_on_the_way(path: Path) -> Path | None:
    """The first of `path` and its parents that exists, when it is not a directory; None if it is (or cannot be seen)."""
    for candidate in (path, *path.parents):
        try:
            if candidate.exists():
                return None if candidate.is_dir() else candidate
        except OSError:  # not looked at: the store's own errors say what is wrong
            return None
    return None


def check_gpus(key: str, entry: NodeEntry | None, pos: str) -> None:
    """`gpus: 0` on a simulated node is a mistake, not a request for the default 8; two different counts are one too.

    `sim: {gpus: 4}` with `gpus: 8` simulated 4 GPUs while `config show` said 8: which one was meant is unknowable.
    `pos` is `file:line:col` of the entry's `gpus`.
    """
    if entry is None or entry.sim is None or entry.gpus is None:
        return
    simulated = entry.sim.gpus if isinstance(entry.sim, SimSettings) else None
    if simulated is not None and simulated != entry.gpus:
        raise ConfigError(
            f"{pos}: `nodes.{key}`: `gpus: {entry.gpus}` and `sim.gpus: {simulated}` disagree.",
            "give the GPU count once (`gpus:` is enough for a simulated node), or the same number in both.",
        )
    if simulated is not None or entry.gpus != 0:
        return
    raise ConfigError(
        f"{pos}: `nodes.{key}.gpus`: a simulated node needs at least 1 GPU.",
        "write the number of simulated GPUs (1-64), or remove `sim:` for a node without GPUs.",
    )


def yaml_error_hint(problem: str) -> str:
    """The hint of a malformed-YAML error: a tab gets its own (YAML indents with spaces only)."""
    if "'\\t'" in problem:
        return "YAML indents with spaces, not tabs: replace the tab there with spaces."
    return "check the indentation and quoting there."
