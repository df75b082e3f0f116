"""Find, parse and validate factory.yaml; expand node sets; resolve command-line TARGETs.

Config errors are for people: each names file:line:column and the key path, suggests the nearest valid key for a
typo, and maps to exit code 3. TARGET errors (an unknown group, a set matching no node) are usage errors (exit 2).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from factoryctl.config_checks import (
    check_gpus,
    check_state_dir,
    config_warnings,
    expand_home,
    plainer_error,
    unknown_key_hint,
)
from factoryctl.config_schema import FactoryFile, NodeEntry, SimSettings, config_dir, from_config_dir, parse_duration
from factoryctl.config_yaml import Loc, key_path, load_yaml
from factoryctl.errors import ConfigError, UsageError
from factoryctl.model.inventory import NodeSpec, SimSpec
from factoryctl.pathlimits import check_path_length
from factoryctl.targets import parse_gpu_target as parse_gpu_target  # re-exported: the CLI imports it from here
from factoryctl.targets import resolve_node_names

CONFIG_ENV = "FACTORYCTL_CONFIG"
CONFIG_NAME = "factory.yaml"


def user_config_dir() -> Path:
    """The XDG config dir (`~/.config/factoryctl`)."""
    import platformdirs

    return Path(platformdirs.user_config_dir("factoryctl"))


def default_state_dir(name: str) -> Path:
    """`~/.local/state/factoryctl/<name>` (XDG state dir)."""
    import platformdirs

    return Path(platformdirs.user_state_dir("factoryctl")) / name


def discover(explicit: Path | None) -> tuple[Path, str]:
    """The config file to use and why: --config, $FACTORYCTL_CONFIG, ./factory.yaml, then the XDG config dir.

    An empty $FACTORYCTL_CONFIG counts as unset. Its `-` (or `./-`) is the file named `-`, as for --config, and is
    named by its absolute path, so no message or hint (`factoryctl init -` prints on stdout) reads it as a stream.
    A leading `~` or `~user` in either is expanded, as in factory.yaml's paths (a quoted one reaches us as typed).
    """
    from factoryctl.current_dir import current_dir, require_current_dir  # a deleted one: current_dir.py

    if explicit is not None:
        return require_current_dir(expand_home(explicit, "--config"), "--config", ConfigError), "--config"
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = require_current_dir(expand_home(Path(env), f"${CONFIG_ENV}"), f"${CONFIG_ENV}", ConfigError)
        return path.absolute() if str(path) == "-" else path, f"${CONFIG_ENV}"
    here = current_dir()
    local = here / CONFIG_NAME if here is not None else None
    if local is not None and local.exists():
        return local, "current directory"
    return user_config_dir() / CONFIG_NAME, "XDG config dir"


@dataclass(frozen=True)
class FactoryConfig:
    """A validated factory: the expanded inventory plus the settings sections."""

    settings: FactoryFile
    nodes: dict[str, NodeSpec]
    groups: dict[str, tuple[str, ...]]
    path: Path | None = None
    state_dir: Path = field(default_factory=Path)
    #: What `config validate` warns of (config_checks.config_warnings), each a sentence starting with file:line.
    warnings: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The factory's name."""
        return self.settings.name

    @property
    def interval_s(self) -> float:
        """Telemetry sampling interval."""
        return self.settings.controller.interval_s

    @property
    def store_path(self) -> Path:
        """`<state_dir>/factory.db`."""
        return self.state_dir / "factory.db"

    def resolve_target(self, target: str | None) -> list[NodeSpec]:
        """Nodes named by TARGET, in inventory order: `all` when None (omitted), a UsageError when empty."""
        names = resolve_node_names("all" if target is None else target, list(self.nodes), self.groups)
        return [self.nodes[name] for name in names]

    def default_walltime_s(self) -> float:
        """The scheduler's default walltime in seconds."""
        return parse_duration(self.settings.scheduler.default_walltime)


# ---------------------------------------------------------------------------------------------------- loading


def load_config(explicit: Path | None = None, pipes: bool = True) -> FactoryConfig:
    """Discover, read and validate factory.yaml (read as config_file.py says: a pipe too unless `pipes` is false)."""
    path, text = read_config_source(explicit, pipes)
    return parse_config(text, path)


def read_config_source(explicit: Path | None = None, pipes: bool = True) -> tuple[Path, str]:
    """The factory.yaml `load_config` would read, and its text: found, its path length checked, read (not parsed)."""
    from factoryctl.config_file import read_config_text

    path, source = discover(explicit)
    check_path_length(path, f"the factory.yaml path (from {source})", "pass --config with a shorter path.")
    return path, read_config_text(path, source, pipes)


def parse_config(
    text: str, path: Path | None = None, state_dir: Path | None = None, *, loader: type[Any] | None = None
) -> FactoryConfig:
    """Validate factory.yaml text; errors name file:line:col and the key path.

    `loader` (shell completion's, completion_inventory.py) reads the YAML in place of the pure-Python SafeLoader: the
    same checks and expansion, but no key positions are gathered (errors say line 1) and no warnings.
    """
    where = str(path) if path else "<factory.yaml>"
    data, positions = load_yaml(text, where, loader)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}:1:1: factory.yaml must be a mapping of keys.", "start from `factoryctl init`.")
    settings = _validate(data, positions, where)
    base = config_dir(path)
    nodes = _expand_nodes(settings, base, positions, where)
    groups = _expand_groups(settings, nodes, positions, where)
    written = from_config_dir(settings.state_dir, base)
    home_state = Path(os.path.expanduser(written)) if written else default_state_dir(settings.name)
    if state_dir is None:
        check_state_dir(Path(os.path.abspath(home_state)), bool(settings.state_dir), positions, where)
        if loader is None:  # a store an older factoryctl kept under the current directory (state_dir_moved)
            from factoryctl.state_dir_moved import note_moved_store

            note_moved_store(settings.state_dir, base, nodes)
    warned = tuple(config_warnings(data, nodes, positions, where)) if loader is None else ()
    return FactoryConfig(settings, nodes, groups, path, state_dir or home_state, warned)


def _where(where: str, positions: dict[Loc, tuple[int, int, int, int]], loc: Loc, at_key: bool = False) -> str:
    for cut in range(len(loc), 0, -1):
        pos = positions.get(loc[:cut])
        if pos:
            line, col = (pos[0], pos[1]) if at_key or cut < len(loc) else (pos[2], pos[3])
            return f"{where}:{line}:{col}"
    return f"{where}:1:1"


def _validate(data: dict[str, Any], positions: dict[Loc, tuple[int, int, int, int]], where: str) -> FactoryFile:
    from pydantic import ValidationError

    try:
        return FactoryFile.model_validate(data)
    except ValidationError as exc:
        error = max(exc.errors(), key=lambda e: (e["type"] == "extra_forbidden", len(e["loc"])))
        loc = _clean_loc(error["loc"])
        if error["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = _valid_keys(loc[:-1])
            near = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean `{near[0]}`?" if near else f"valid keys here: {', '.join(sorted(valid))}."
            pos = _where(where, positions, loc, at_key=True)
            raise ConfigError(f"{pos}: unknown key `{key_path(loc)}`.", unknown_key_hint(loc) or hint) from None
        pos = _where(where, positions, loc)
        message, hint = error["msg"].removeprefix("Value error, "), _meaning(loc)
        message, hint = plainer_error(loc, error["type"], error.get("input")) or (message, hint)
        raise ConfigError(f"{pos}: `{key_path(loc)}`: {message}.", hint) from None


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    """Drop pydantic's union-branch markers (`NodeEntry`, `str`, `SimSettings`) from an error location."""
    markers = {"NodeEntry", "SimSettings", "str", "none"}
    return tuple(
        part
        for part in loc
        if not (isinstance(part, str) and (part in markers or part.startswith(("literal[", "function-"))))
    )


def _valid_keys(loc: Loc) -> list[str]:
    """Keys allowed at a path, for "did you mean"."""
    return list(_schema_at(loc)[0].model_fields)


def _meaning(loc: Loc) -> str:
    """The hint for a wrong value at `loc`: what its key means, from the schema (the reference is in no wheel)."""
    key, described = _schema_at(loc)[1]
    if described is None or not described.description:
        return "`factoryctl init -` prints a commented example factory.yaml."
    return f"`{key}`: {described.description}"


def _schema_at(loc: Loc) -> tuple[Any, tuple[str, Any]]:
    """The schema model a key path leads into, and the last schema key on the path with its field (None if none)."""
    model: Any = FactoryFile
    last: tuple[str, Any] = ("", None)
    skip_next = False
    for part in loc:
        if skip_next:
            skip_next = False
            continue
        fld = model.model_fields.get(str(part))
        if fld is not None:
            last = (str(part), fld)
        if part == "nodes":
            model, skip_next = NodeEntry, True
            continue
        if part == "sim":
            model = SimSettings
            continue
        annotation = getattr(fld, "annotation", None)
        # `dict[str, str]` is a `type` on Python 3.10 (a GenericAlias, not a model): it has an `__origin__`
        if isinstance(annotation, type) and getattr(annotation, "__origin__", None) is None:
            model = annotation
    return model, last


def _expand_nodes(
    settings: FactoryFile, base: Path | None, positions: dict[Loc, tuple[int, int, int, int]], where: str
) -> dict[str, NodeSpec]:
    from factoryctl.targets import MAX_NODE_SET, check_size, expand_node_set, name_problem

    nodes: dict[str, NodeSpec] = {}
    keys: dict[str, str] = {}  # each node's key, to name both keys of a node given twice
    for key, entry in settings.nodes.items():
        pos = _where(where, positions, ("nodes", key), at_key=True)
        try:  # counted before expanding: `n[1-100000000]` is refused at once, not after eating memory
            check_size(key)
            names = expand_node_set(key)  # the whole key: ClusterShell applies its operators (`gpu[01-04]!gpu03`)
        except UsageError as exc:
            raise ConfigError(f"{pos}: `nodes.{key}`: {exc.message}", "write names like gpu01 or gpu[01-16].") from None
        if not names:  # `"":` or `gpu[01-04]!gpu[01-04]`: an entry for no node is a mistake, not an empty rack
            shown = key or '""'
            raise ConfigError(f"{pos}: `nodes.{shown}` names no node.", "write names like gpu01 or gpu[01-16].")
        if len(nodes) + len(names) > MAX_NODE_SET:
            raise ConfigError(
                f"{pos}: `nodes.{key}` takes the inventory past {MAX_NODE_SET:,} nodes.",
                "check the ranges' bounds (a digit too many?).",
            )
        check_gpus(key, entry, _where(where, positions, ("nodes", key, "gpus")))
        for name in names:
            problem = name_problem(name)
            if problem:
                raise ConfigError(
                    f"{pos}: node name {problem}.",
                    "rename the node; its `host` says which machine it is, if the new name does not.",
                )
            if name in nodes:
                first = _where(where, positions, ("nodes", keys[name]), at_key=True).rsplit(":", 2)[1]
                raise ConfigError(
                    f"{pos}: node `{name}` is defined twice: here by `{key}`, on line {first} by `{keys[name]}`.",
                    "each node may appear in one key only.",
                )
            nodes[name], keys[name] = _node_spec(name, entry or NodeEntry(), settings, base), key
    return nodes


def _node_spec(name: str, entry: NodeEntry, settings: FactoryFile, base: Path | None) -> NodeSpec:
    ssh = settings.ssh
    sim: SimSpec | None = None
    if entry.sim is not None:
        spec = SimSettings.model_validate({"profile": entry.sim}) if isinstance(entry.sim, str) else entry.sim
        gpus = spec.gpus if spec.gpus is not None else entry.gpus if entry.gpus is not None else 8
        sim = SimSpec(spec.profile, gpus, spec.seed, tuple(spec.unsupported), spec.setters_need_root)
    return NodeSpec(
        name=name,
        host=entry.host or name,
        port=entry.port or ssh.port,
        transport=entry.transport,
        user=entry.user or ssh.user,
        identity_file=from_config_dir(entry.identity_file or ssh.identity_file, base),
        known_hosts=from_config_dir(ssh.known_hosts, base),
        python=entry.python or ssh.python,
        rack=entry.rack,
        labels=dict(entry.labels),
        sim=sim,
        gpus=entry.gpus if entry.gpus is not None else sim.gpus if sim is not None else None,
    )


def _expand_groups(
    settings: FactoryFile,
    nodes: dict[str, NodeSpec],
    positions: dict[Loc, tuple[int, int, int, int]],
    where: str,
) -> dict[str, tuple[str, ...]]:
    """Every group's members; a group may name groups defined anywhere in the file, but not in a cycle."""
    from factoryctl.targets import name_problem

    for group in settings.groups:
        problem = name_problem(group)
        if problem:
            pos = _where(where, positions, ("groups", group), at_key=True)
            raise ConfigError(f"{pos}: group name {problem}.", "rename the group (it is used as `@name`).")
    resolved = _ResolvedGroups(settings.groups)
    for group in _dependency_order(settings.groups, positions, where):  # a group's groups come before it
        try:
            resolved.members[group] = tuple(resolve_node_names(settings.groups[group], list(nodes), resolved))
        except UsageError as exc:
            pos = _where(where, positions, ("groups", group))
            hint = exc.hint
            if hint is not None and "factoryctl nodes list" in hint:  # that command would stop on this same error
                hint = "a group names nodes defined under `nodes:` in this file."
            raise ConfigError(f"{pos}: `groups.{group}`: {exc.message}", hint) from None
    return {group: resolved.members[group] for group in settings.groups}


class _ResolvedGroups(Mapping[str, tuple[str, ...]]):
    """The groups resolved so far, iterating over every group in the file so an unknown `@name`'s hint lists all."""

    def __init__(self, exprs: Mapping[str, str]) -> None:
        self.exprs = exprs
        self.members: dict[str, tuple[str, ...]] = {}

    def __getitem__(self, group: str) -> tuple[str, ...]:
        return self.members[group]

    def __iter__(self) -> Iterator[str]:
        return iter(self.exprs)

    def __len__(self) -> int:
        return len(self.exprs)


def _dependency_order(
    exprs: Mapping[str, str], positions: dict[Loc, tuple[int, int, int, int]], where: str
) -> list[str]:
    """The groups ordered so each comes after the groups it names (`g1: "@g2"` may precede `g2:`); a cycle is an error.

    A depth-first walk with an explicit stack: a chain of thousands of groups must not exhaust Python's recursion.
    """
    from factoryctl.targets import split_terms

    named = {
        group: [term[1:] for _, term in split_terms(expr) if term.startswith("@") and term[1:] in exprs]
        for group, expr in exprs.items()
    }
    done: set[str] = set()
    order: list[str] = []
    for root in exprs:
        if root in done:
            continue
        path, on_path, stack = [root], {root}, [iter(named[root])]
        while stack:
            following = next(stack[-1], None)
            if following is None:
                stack.pop()
                done.add(path[-1])
                on_path.discard(path[-1])
                order.append(path.pop())
            elif following in on_path:
                raise _cycle_error(path[path.index(following) :], list(exprs), positions, where)
            elif following not in done:
                path.append(following)
                on_path.add(following)
                stack.append(iter(named[following]))
    return order


def _cycle_error(
    members: list[str], order: list[str], positions: dict[Loc, tuple[int, int, int, int]], where: str
) -> ConfigError:
    """The cycle named from the member written first in the file, at that member's value."""
    first = min(members, key=order.index)
    turn = members.index(first)
    ring = [*members[turn:], *members[:turn], first]
    pos = _where(where, positions, ("groups", first))
    if len(members) == 1:
        return ConfigError(
            f"{pos}: `groups.{first}` names itself (`@{first}`).", "a group may name other groups, not itself."
        )
    return ConfigError(
        f"{pos}: groups {' -> '.join(f'@{g}' for g in ring)} name each other in a cycle.",
        "a group may name other groups, but no group may end up naming itself; break the cycle.",
    )
