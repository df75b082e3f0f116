"""The TARGET grammar: `all`, node sets, `@groups` and `/GPUS`, resolved strictly against the inventory.

A TARGET chooses the nodes a command changes, so every doubt is a usage error (exit 2) before anything runs: an
empty TARGET (an unset shell variable in cron must not mean `all`), an element of a list that names no node (a typo
must not silently shrink the set, nor a typo after `!` silently grow it), and a range too large to expand (ranges
are counted before ClusterShell materialises them, so `x[1-99999999999]` is refused at once instead of eating memory).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence

from factoryctl.errors import UsageError

#: Most names one node set may expand to (an inventory key, or one element of a TARGET).
MAX_NODE_SET = 100_000
#: GPUs per node the grammar accepts (`gpus` in factory.yaml is at most 64 too), so `n1/0-99999999` is refused.
MAX_GPUS = 64
#: The TARGET operators of ClusterShell, applied left to right: union, difference, intersection, symmetric difference.
OPERATORS = ",!&^"
#: What a node or group name may be made of: nothing the TARGET grammar uses (`/ , ! & ^ @ [ ]`, whitespace).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
#: Names the grammar gives a meaning of its own.
RESERVED_NAMES = frozenset({"all"})
EMPTY_HINT = "write `all` for every node, or a node set such as gpu[01-04]."
_BRACKET = re.compile(r"\[([^\[\]]*)\]")
_RANGE = re.compile(r"^\s*(\d+)(?:-(\d+)(?:/(\d+))?)?\s*$")
_DIGITS = re.compile(r"(\d+)")


def split_terms(expr: str) -> list[tuple[str, str]]:
    """`a[1-3],b!c` -> [("", "a[1-3]"), (",", "b"), ("!", "c")]: operators outside brackets, terms stripped."""
    terms: list[tuple[str, str]] = []
    op, start, depth = "", 0, 0
    for pos, char in enumerate(expr):
        depth += (char == "[") - (char == "]")
        if depth == 0 and char in OPERATORS:
            terms.append((op, expr[start:pos].strip()))
            op, start = char, pos + 1
    terms.append((op, expr[start:].strip()))
    return terms


def node_set_size(term: str) -> int:
    """How many names a node set term names at most, counted from its brackets without expanding them."""
    size = 1
    for body in _BRACKET.findall(term):
        count = 0
        for piece in body.split(","):
            match = _RANGE.match(piece)
            if match is None:
                count += 1  # not a range: ClusterShell reports the syntax error
                continue
            low, high, step = int(match[1]), int(match[2] or match[1]), int(match[3] or 1)
            count += max(0, (high - low) // max(step, 1) + 1)
        size *= max(count, 1)
    return size


def check_size(expr: str, limit: int = MAX_NODE_SET) -> int:
    """How many names `expr` (terms and operators) names at most; a UsageError when more than `limit`."""
    size = sum(node_set_size(term) for _, term in split_terms(expr))
    if size > limit:
        raise UsageError(
            f"`{expr}` names {size:,} nodes; a node set may name at most {limit:,}.",
            "check the range's bounds (a digit too many?).",
        )
    return size


def expand_node_set(term: str) -> list[str]:
    """Every name a node set term names (bounded by check_size); a UsageError when it is not a node set."""
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet, NodeSetException

    check_size(term)
    try:
        return list(NodeSet(term, resolver=RESOLVER_NOGROUP))
    except (NodeSetException, ValueError) as exc:
        raise UsageError(f"`{term}` is not a valid node set ({exc}).", "use e.g. gpu[01-16], @rack-a or all.") from None


def resolve_node_names(target: str, nodes: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand a TARGET to inventory names, in inventory order; any doubt is a UsageError (see the module doc)."""
    if not target.strip():
        raise UsageError("the TARGET is empty (an unset variable?); it names no node.", EMPTY_HINT)
    if not nodes:
        raise UsageError("the inventory has no nodes.", "add nodes to factory.yaml (see `factoryctl init`).")
    if "/" in target:  # no name holds a `/`: this is `node/GPUS` given to a command that takes whole nodes
        whole = "".join(op + term.split("/", 1)[0].strip() for op, term in split_terms(target.strip()))
        raise UsageError(
            f"`{target}` picks GPUs, but this command acts on whole nodes: it takes no /GPUS.",
            f"write `{whole}` for the whole nodes." if whole else EMPTY_HINT,
        )
    known = set(nodes)
    chosen: set[str] = set()
    unknown: list[str] = []
    for op, term in split_terms(target.strip()):
        if not term:
            raise UsageError(f"`{target}` has an empty element (an unset variable?).", EMPTY_HINT)
        names = _term_names(term, nodes, known, groups)
        if not names and term not in unknown:
            unknown.append(term)  # every unknown element is named at once, groups and node sets alike
        chosen = _COMBINE[op](chosen, names)
    if unknown:
        raise UsageError(_unknown_message(unknown), _did_you_mean(unknown, nodes, groups))
    ordered = [name for name in nodes if name in chosen]
    if not ordered:
        raise UsageError(f"`{target}` matches no node in the inventory.", "run `factoryctl nodes list` to see them.")
    return ordered


_COMBINE: dict[str, Callable[[set[str], set[str]], set[str]]] = {
    "": lambda _, new: new,
    ",": set.union,
    "!": set.difference,
    "&": set.intersection,
    "^": set.symmetric_difference,
}


def _term_names(term: str, nodes: Sequence[str], known: set[str], groups: Mapping[str, Sequence[str]]) -> set[str]:
    """The inventory names a term names; an empty set for an unknown group or a set naming no node."""
    if term in ("all", "@all"):
        return set(nodes)
    if term.startswith("@"):
        return set(groups.get(term[1:], ()))
    return known.intersection(expand_node_set(term))


def _unknown_message(unknown: list[str]) -> str:
    """`gpu98`, `gpu99` match no node in the inventory; unknown group `@rak-a`."""
    sets = [term for term in unknown if not term.startswith("@")]
    missing_groups = [term for term in unknown if term.startswith("@")]
    parts = []
    if sets:
        verb = "matches" if len(sets) == 1 else "match"
        parts.append(", ".join(f"`{term}`" for term in sets) + f" {verb} no node in the inventory")
    if missing_groups:
        noun = "group" if len(missing_groups) == 1 else "groups"
        parts.append(f"unknown {noun} " + ", ".join(f"`{term}`" for term in missing_groups))
    return "; ".join(parts) + "."


def _did_you_mean(unknown: list[str], nodes: Sequence[str], groups: Mapping[str, Sequence[str]]) -> str:
    """One suggestion per unknown element that has a near name, each named once, and where to see the names."""
    spaced = [term for term in unknown if len(term.split()) > 1]
    if spaced:  # `gpu01 gpu02`, from $(cat nodes.txt): one term, as the shell passed one word
        return f"separate nodes with commas, not spaces: `{','.join(spaced[0].split())}`."
    words = ["all", *nodes, *(f"@{g}" for g in groups)]
    near = [
        match
        for term in unknown
        for match in (_same_numbers(term, words) or difflib.get_close_matches(term, words, n=1, cutoff=0.6))
    ]
    if near:
        listed = ", ".join(f"`{name}`" for name in dict.fromkeys(near))
        return f"did you mean {listed}? ({_where_listed(near)})"
    if any(term.startswith("@") for term in unknown):
        return "groups in factory.yaml: " + (", ".join(f"@{g}" for g in groups) or "none defined") + "."
    return "run `factoryctl nodes list` to see them."


def _where_listed(names: list[str]) -> str:
    """Which command lists the suggested names: `nodes list` the nodes, `config show` the groups."""
    has_groups = any(name.startswith("@") for name in names)
    has_nodes = any(not name.startswith("@") for name in names)
    if has_groups and has_nodes:
        return "`factoryctl nodes list` shows the nodes, `factoryctl config show` the groups"
    return "`factoryctl config show` lists the groups" if has_groups else "`factoryctl nodes list` shows them"


def _same_numbers(term: str, words: Sequence[str]) -> list[str]:
    """The names written like `term` but for case and zero padding (`gpu3`, `GPU03` -> `gpu03`), if there are some.

    The closest string is often another node (`gpu3` is nearer `gpu13` than `gpu03`), so the same numbers come first.
    A node set is matched name by name and the names that match are folded again: `gpu[1-4]` -> `gpu[01-04]`.
    """
    by_key: dict[tuple[str, ...], str] = {}
    for word in words:
        by_key.setdefault(_number_key(word), word)
    if term.startswith("@") or "[" not in term:
        found = by_key.get(_number_key(term))
        return [found] if found is not None else []
    try:
        names = expand_node_set(term)
    except UsageError:
        return []
    matched = [found for found in (by_key.get(_number_key(name)) for name in names) if found is not None]
    if not matched:
        return []
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    return [str(NodeSet.fromlist(matched, resolver=RESOLVER_NOGROUP))]  # `gpu[1-9]` of 8 nodes: `gpu[01-08]`


def _number_key(name: str) -> tuple[str, ...]:
    """`GPU03` -> ("gpu", "3", ""): the name in lower case, each run of digits stripped of its leading zeros."""
    parts = _DIGITS.split(name.casefold())
    return tuple(part.lstrip("0") or "0" if index % 2 else part for index, part in enumerate(parts))


def name_problem(name: str) -> str | None:
    """Why a node or group name could not be addressed in a TARGET, or None."""
    if name in RESERVED_NAMES:
        return f"`{name}` is reserved (the TARGET `all` means every node)"
    if not NAME_PATTERN.fullmatch(name):
        return f"`{name}` cannot be written in a TARGET: use letters, digits, '.', '_', ':' and '-' only"
    return None


def parse_gpu_target(target: str) -> tuple[str, list[int] | None]:
    """Split `gpu03/0-3` into the node part and GPU indexes (None when no `/` part: every GPU)."""
    if "/" not in target:
        return target, None
    node_part, gpu_part = target.rsplit("/", 1)
    if "/" in node_part:
        raise UsageError(
            f"`{target}` has more than one `/GPUS`; one `/GPUS` ends a TARGET and applies to all its nodes.",
            "write e.g. n[04,06]/0, or run the command once per node.",
        )
    return node_part, _gpu_indexes(gpu_part)


def _gpu_indexes(gpu_part: str) -> list[int]:
    indexes: set[int] = set()
    try:
        for piece in gpu_part.split(","):
            low, _, high = piece.partition("-")
            first, last = int(low), int(high or low)
            if first > last or first < 0:
                raise ValueError(piece)  # 3-1 is a typo, not an empty list
            if last >= MAX_GPUS:
                raise UsageError(
                    f"GPU {last} is out of range: a node has at most {MAX_GPUS} GPUs (0-{MAX_GPUS - 1}).",
                    "write GPUs as 0, 0-3 or 0,2,5 after the `/`.",
                )
            indexes.update(range(first, last + 1))
    except ValueError:
        raise UsageError(f"`{gpu_part}` is not a GPU list.", "write GPUs as 0, 0-3 or 0,2,5 after the `/`.") from None
    return sorted(indexes)
