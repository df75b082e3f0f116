"""A bound on what YAML merge keys (`<<`) copy, checked on the composed nodes before any data is constructed.

The alias bomb of lists (`[*a, *a, ...]` nested) costs nothing: an alias is one shared object. A merge key is
different: PyYAML flattens it by copying the merged mapping's pairs into the merging one, level after level, so
`{<<: [*m0, *m0]}`, `{<<: [*m1, *m1]}`, ... doubles at each step: 24 such lines took 13 s and 446 MB, 30 ate 3 GB,
and every command and every completion TAB stalled on them. Here each mapping's size after merging is counted
(each node once, by identity) and a file whose merges would copy more than MAX_MERGED_PAIRS pairs is refused at the
mapping that passes it. A real factory.yaml merges a few defaults into each node entry: thousands of pairs.
"""

from __future__ import annotations

from itertools import chain
from typing import TYPE_CHECKING

from factoryctl.errors import ConfigError

if TYPE_CHECKING:
    from yaml.nodes import MappingNode, Node

#: The most key/value pairs merge keys may copy in one file, all mappings together (100,000 node entries merging
#: ten defaults each); the doubling bomb above passes it at its 19th mapping, refused in under 0.2 s.
MAX_MERGED_PAIRS = 1_000_000
_MERGE = "tag:yaml.org,2002:merge"


def check_merge_sizes(root: Node, where: str) -> None:
    """ConfigError (exit 3) at the first mapping, in document order, whose merges take the file past the bound."""
    import yaml

    from factoryctl.textfile import yaml_children

    sizes: dict[int, int] = {}
    counted: set[int] = set()
    copied = 0
    for _, loc, _, node in chain([(root, (), None, root)], yaml_children(root)):
        if not isinstance(node, yaml.MappingNode) or id(node) in counted or not _merged(node):
            continue  # an alias of a mapping counted at its anchor is flattened once, not once per alias
        counted.add(id(node))
        copied += _size(node, sizes) - _own(node)
        if copied > MAX_MERGED_PAIRS:
            mark = next(key.start_mark for key, _ in node.value if key.tag == _MERGE)
            what = f"`{'.'.join(str(part) for part in loc)}`" if loc else "the top level"
            raise ConfigError(
                f"{where}:{mark.line + 1}:{mark.column + 1}: the merge keys (`<<`) up to {what} would copy more "
                f"than {MAX_MERGED_PAIRS:,} keys into the mappings that merge them.",
                "merge a few defaults into each entry (`<<: *defaults`), "
                "not mappings that merge others again and again.",
            )


def _merged(node: MappingNode) -> list[MappingNode]:
    """The mappings `node`'s merge keys name, as often as named (`<<: [*a, *a]` copies `a` twice)."""
    import yaml

    out: list[MappingNode] = []
    for key, value in node.value:
        if key.tag != _MERGE:
            continue
        items = value.value if isinstance(value, yaml.SequenceNode) else [value]
        out += [item for item in items if isinstance(item, yaml.MappingNode)]  # any other is PyYAML's error
    return out


def _own(node: MappingNode) -> int:
    return sum(key.tag != _MERGE for key, _ in node.value)


def _size(node: MappingNode, sizes: dict[int, int]) -> int:
    """How many pairs `node` holds once flattened, memoised in `sizes` by node identity; capped past the bound.

    A walk with an explicit stack: a chain of thousands of mappings each merging the last must not exhaust Python's
    recursion. A mapping that merges itself (`&a {x: {<<: *a}}`) counts its own pairs there: PyYAML drops the merge
    key before following it, so the loop ends.
    """
    stack: list[tuple[MappingNode, bool]] = [(node, False)]
    walking: set[int] = set()
    while stack:
        current, children_done = stack.pop()
        if id(current) in sizes:
            continue
        if children_done:
            total = _own(current) + sum(sizes.get(id(m), _own(m)) for m in _merged(current))
            sizes[id(current)] = min(total, MAX_MERGED_PAIRS + 1)
            walking.discard(id(current))
        elif id(current) not in walking:
            walking.add(id(current))
            stack.append((current, True))
            stack += [(m, False) for m in _merged(current) if id(m) not in sizes and id(m) not in walking]
    return sizes[id(node)]
