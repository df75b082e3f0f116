"""Checks of factory.yaml beyond its schema, and of the paths that name it, kept out of config.py to keep it short.

Each turns a mistake that would otherwise surface later, and misleadingly, into a config error at load time: a
`~` nobody expanded (`-c '~/lab.yaml'` would name a directory called `~`), a state_dir that is a file ("there is no
store at .../afile/factory.db"), a GPU count given twice. Next to them: the warnings `config validate` gives (a
`$VAR` nothing expands, nodes sharing one address) and factory.yaml's own words for errors PyYAML or pydantic word
obscurely (a group written as a list, a section indented under `nodes:`, a second document).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from factoryctl.config_schema import NodeEntry, SimSettings, variable_problem
from factoryctl.errors import ConfigError, FactoryError
from factoryctl.model.inventory import NodeSpec
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


def yaml_error_words(problem: str) -> tuple[str, str]:
    """The problem and hint of a malformed-YAML error, in factory.yaml's words where PyYAML's would puzzle."""
    if "'\\t'" in problem:
        return problem, "YAML indents with spaces, not tabs: replace the tab there with spaces."
    if problem == "but found another document":  # a `---` after the first document
        return "a second YAML document starts here", "factory.yaml holds one document: remove the `---` line."
    return problem, "check the indentation and quoting there."


def unknown_key_hint(loc: Loc) -> str | None:
    """The hint for `nodes.controller.interval_s`: a top-level section's key under a "node" named as the section.

    Only when the unknown key is one of that section's, so a node really named `power` still gets "did you mean".
    """
    from pydantic import BaseModel

    from factoryctl.config_schema import FactoryFile

    if len(loc) < 3 or loc[0] != "nodes" or str(loc[1]) not in FactoryFile.model_fields:
        return None
    section = FactoryFile.model_fields[str(loc[1])].annotation
    if not (isinstance(section, type) and issubclass(section, BaseModel) and loc[2] in section.model_fields):
        return None
    return f"is `{loc[1]}:` indented under `nodes:`? a top-level section starts at the line's first column."


def plainer_error(loc: Loc, kind: str, value: object) -> tuple[str, str] | None:
    """A message and hint in factory.yaml's words for a value of the wrong shape, where pydantic's would puzzle.

    `kind` is pydantic's error type, `value` what was written. A group written as a YAML list (`g: [gpu01, gpu02]`)
    is one node set, as TARGET takes it; `nodes:` written as a list is a mapping of names to settings.
    """
    if loc == ("nodes",) and kind == "dict_type":
        return (
            "must be a mapping of node names (or node sets) to their settings, not a list",
            "write one `name: {settings}` per line under `nodes:`, e.g. `  gpu[01-04]: {host: ...}`, without `- `.",
        )
    if len(loc) == 2 and loc[0] == "nodes" and kind == "model_type":  # `gpu01: 10.0.0.1`
        return (
            "a node entry must be a mapping (e.g. `{host: 10.0.0.1}`)",
            f"write `{loc[1]}: {{host: ...}}`, or `{loc[1]}: {{}}` when its host is its name.",
        )
    if len(loc) == 2 and loc[0] == "groups" and kind == "string_type" and isinstance(value, list):
        names = [str(item) for item in value if isinstance(item, (str, int))]
        message = "a group is one node set written as text, not a YAML list"
        if not names or len(names) != len(value):
            return message, 'write it as text, e.g. `gpu[01-02]` or "gpu01,gpu02".'
        joined = f'`{loc[1]}: "{",".join(names)}"`'
        if all(re.fullmatch(r"[\w.-]+", name) for name in names):  # node names: folded as a node set
            from factoryctl.model.folding import fold

            return message, f"write `{loc[1]}: {fold(names)}` or {joined}."
        return message, f"write {joined}."
    return None


def config_warnings(data: dict[str, object], nodes: dict[str, NodeSpec], positions: Positions, where: str) -> list[str]:
    """What `config validate` warns of: settings naming environment variables, and nodes sharing one address.

    A `$XDG_STATE_HOME/...` state_dir made a directory literally named `$XDG_STATE_HOME`; several nodes with one
    host and port are one machine counted many times (a test or a lab may want that, so it is no error).
    """
    from factoryctl.model.folding import fold_nodes

    out: list[str] = []
    for loc, value in _text_settings(data, ()):
        problem = variable_problem(value)
        if problem is not None:
            line, col = positions.get(loc, (0, 0, 1, 1))[2:]
            out.append(f"{where}:{line}:{col}: `{'.'.join(map(str, loc))}` {problem}.")
    by_address: dict[tuple[str, int], list[str]] = {}
    for name, spec in nodes.items():
        if spec.transport == "ssh" and spec.sim is None:
            by_address.setdefault((spec.host, spec.port), []).append(name)
    for (host, port), names in by_address.items():
        if len(names) > 1:
            address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            out.append(
                f"{where}: nodes {fold_nodes(names)} ({len(names)}) all log in to {address}: one machine counted "
                f"{len(names)} times; give each node its own `host` (or `port`) unless that is meant."
            )
    return out


def _text_settings(value: object, loc: Loc) -> list[tuple[Loc, str]]:
    """Every text setting under `value` with its key path, node labels (free text) left out."""
    if isinstance(value, str):
        return [(loc, value)]
    if isinstance(value, dict):
        if len(loc) == 3 and loc[0] == "nodes" and loc[2] == "labels":
            return []
        return [item for key, sub in value.items() for item in _text_settings(sub, (*loc, str(key)))]
    if isinstance(value, list):
        return [item for index, sub in enumerate(value) for item in _text_settings(sub, (*loc, index))]
    return []
