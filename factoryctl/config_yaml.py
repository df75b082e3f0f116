"""Read factory.yaml's YAML: one parse into data and key positions, with the checks the schema cannot make.

Split from config.py (house rule: files under ~500 lines): this is the YAML layer under the schema validation there,
and shell completion's loader (cli/completion_inventory.py) mirrors its checks and `NOT_TEXT_TAGS`, so they are
kept together here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from factoryctl.config_checks import yaml_error_words
from factoryctl.config_merge import check_merge_sizes
from factoryctl.errors import ConfigError

if TYPE_CHECKING:
    from yaml.nodes import Node

Loc = tuple[str | int, ...]


def load_yaml(
    text: str, where: str, loader_class: type[Any] | None = None
) -> tuple[Any, dict[Loc, tuple[int, int, int, int]]]:
    """The document's data and key positions, from one parse; repeated keys and keys that are not names refused.

    The composed nodes give the positions and are then constructed into data as `yaml.safe_load` would (one parse, not
    two: large inventories). The checks come first: construction flattens merge keys (`<<`) into the nodes. The
    pure-Python loader, not CSafeLoader: libyaml marks some values (`{a: }`) a column later and accepts `a:<TAB>b`, so
    positions and errors would change.
    """
    import yaml

    try:
        loader = (loader_class or yaml.SafeLoader)(text)  # the reader refuses a NUL here already
        try:
            simple = getattr(loader, "simple_data", None)  # completion's loader: a simple document's data, no nodes
            if simple is not None:
                found, data = simple()
                if found:
                    return data, {}
            root = loader.get_single_node()
            if root is None:
                return None, {}
            made = getattr(loader, "checks_made_composing", None)  # completion's loader checks while composing
            if made is None or not made(root, where):
                _check_duplicate_keys(root, where)
                _check_key_types(root, where)
                _read_as_text(root)
                check_merge_sizes(root, where)
            positions = _positions(root) if loader_class is None else {}
            return loader.construct_document(root), positions
        finally:
            loader.dispose()
    except RecursionError:  # PyYAML parses nested collections recursively: 5,000 `[` exhaust Python's stack
        raise ConfigError(
            f"{where}:{loader.line + 1}:{loader.column + 1}: malformed YAML: collections nested too deeply to read.",
            "no factory.yaml setting nests more than a few levels; check the brackets and indentation there.",
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        pos = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = getattr(exc, "problem", None) or str(exc)
        problem, hint = yaml_error_words(problem)
        raise ConfigError(f"{pos}: malformed YAML: {problem}.", hint) from exc


def _positions(root: Node) -> dict[Loc, tuple[int, int, int, int]]:
    """Map each key path to (key line, key col, value line, value col), 1-based (an item's own place twice)."""
    from factoryctl.textfile import yaml_children

    out: dict[Loc, tuple[int, int, int, int]] = {}
    for _, path, key_node, value_node in yaml_children(root):
        km, vm = (key_node or value_node).start_mark, value_node.start_mark
        out[path] = (km.line + 1, km.column + 1, vm.line + 1, vm.column + 1)
    return out


def _check_duplicate_keys(root: Node, where: str) -> None:
    """YAML lets a repeated key silently replace the first; in an inventory that hides a mistake, so refuse it."""
    from factoryctl.textfile import first_repeated_key

    found = first_repeated_key(root)
    if found is not None:
        loc, mark = found
        raise ConfigError(
            f"{where}:{mark.line + 1}:{mark.column + 1}: `{key_path(loc)}` is given twice.",
            "keep one; YAML would silently use the last.",
        )


#: What YAML 1.1 makes of an unquoted key that is not text (`no:` is false, `123:` a number, `~:` null).
_KEY_TAGS = {"bool": "a boolean", "int": "a number", "float": "a number", "null": "null", "timestamp": "a date"}


def _check_key_types(root: Node, where: str) -> None:
    """Every key in factory.yaml is a name; `no:`, `123:` or `2024-01-01:` would reach the schema as another type."""
    from factoryctl.textfile import yaml_children

    for _, loc, key_node, _ in yaml_children(root):  # a list or mapping as a key is already malformed YAML
        if key_node is None or key_node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"):
            continue
        mark, key = key_node.start_mark, loc[-1]
        kind = _KEY_TAGS.get(key_node.tag.rsplit(":", 1)[-1], f"type {key_node.tag}")
        under = f" under `{key_path(loc[:-1])}`" if len(loc) > 1 else ""
        raise ConfigError(
            f"{where}:{mark.line + 1}:{mark.column + 1}: the key `{key}`{under} is read by YAML as {kind}, not a name.",
            f'quote it: write `"{key}":` instead of `{key}:`.',
        )


#: What YAML 1.1 reads a plain scalar as besides text: a rack named `12` or a label `gen: 5` is still their text.
NOT_TEXT_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("int", "float", "bool", "timestamp"))


def _read_as_text(root: Node) -> None:
    """Retag `rack` and label values YAML reads as numbers, booleans or dates: `gen: 05` is the text `05`, not 5."""
    import yaml

    from factoryctl.textfile import yaml_children

    for _, loc, _, value_node in yaml_children(root):
        text_setting = loc[:1] == ("nodes",) and (
            (len(loc) == 3 and loc[2] == "rack") or (len(loc) == 4 and loc[2] == "labels")
        )
        if text_setting and isinstance(value_node, yaml.ScalarNode) and value_node.tag in NOT_TEXT_TAGS:
            value_node.tag = "tag:yaml.org,2002:str"


def key_path(loc: Iterable[str | int]) -> str:
    """A key path as errors name it: `nodes.gpu01.rack`."""
    return ".".join(str(part) for part in loc)
