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
from typing import TYPE_CHECKING

from factoryctl.errors import UsageError

if TYPE_CHECKING:
    from ClusterShell.NodeSet import NodeSet

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
#: One element of a `/GPUS` list: an index or a range with both ends, in ASCII digits (`0-` is `0-$LAST` unset, `+1`
#: and `1_0` are typos `int()` would take, `٣` a digit of another script).
_GPU_ELEMENT = re.compile(r"\s*([0-9]+)(?:\s*-\s*([0-9]+))?\s*", re.ASCII)
#: The longest number a node set's brackets may hold (`n[1-99999999999999999999]` is counted, then refused as too many).
MAX_RANGE_DIGITS = 100
#: Did-you-mean folds a node set name by name (`gpu[1-9]` -> `gpu[01-08]`) only up to this many names.
MAX_FOLDED_NAMES = 10_000
#: Did-you-mean suggests names for the first this many unknown elements only: each is compared with every name, and
#: a pasted list of 1,000 typos against 20,000 nodes took minutes before its usage error.
MAX_SUGGESTED_TERMS = 5


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
            longest = max(len(number) for number in match.groups(""))
            if longest > MAX_RANGE_DIGITS:  # int() refuses 4,300 digits: that was an internal error
                raise UsageError(
                    f"`{term}` has a number of {longest:,} digits in its brackets, too long for a node name.",
                    "check the range's bounds (a digit too many?).",
                )
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


#: A term naming one node as written (no brackets, operators or spaces, no run of digits ClusterShell refuses, as it
#: does past 100): ClusterShell expands it to itself, so it is not asked (1,600 such factory.yaml keys: 20 ms).
ONE_NAME = re.compile(r"(?!.*[0-9]{19})[A-Za-z0-9][A-Za-z0-9_.:-]*")


def expand_node_set(term: str) -> list[str]:
    """Every name a node set term names (bounded by check_size); a UsageError when it is not a node set."""
    if ONE_NAME.fullmatch(term):
        return [term]
    return list(_node_set(term))


def _node_set(term: str) -> NodeSet:
    """The ClusterShell node set of a term (bounded by check_size), not expanded; a UsageError when it is none."""
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet, NodeSetException

    check_size(term)
    try:
        return NodeSet(term, resolver=RESOLVER_NOGROUP)
    except (NodeSetException, ValueError) as exc:
        said = _backwards_range(term) or f"`{term}` is not a valid node set ({exc})."
        raise UsageError(said, "use e.g. gpu[01-16], @rack-a or all.") from None


def _backwards_range(term: str) -> str | None:
    """What is wrong with a term whose range counts down (`l[3-1]`: ClusterShell says "invalid values"), if it does."""
    for bracket in re.finditer(r"\[([^]]*)\]", term):
        for found in re.finditer(r"(\d+)-(\d+)", bracket[1]):
            if int(found[1]) > int(found[2]):
                at = bracket.start(1) + found.start()
                fixed = f"{term[:at]}{found[2]}-{found[1]}{term[at + len(found[0]) :]}"
                return f"`{term}`: the range {found[0]} goes backwards (write `{fixed}`)."
    return None


def gpu_slashes(target: str) -> list[int]:
    """Where `target` has a `/` outside brackets, each starting a `/GPUS` part; `n[01-08/2]`'s `/2` is a step range."""
    found: list[int] = []
    depth = 0
    for pos, char in enumerate(target):
        depth += (char == "[") - (char == "]")
        if depth == 0 and char == "/":
            found.append(pos)
    return found


def resolve_node_names(target: str, nodes: Sequence[str], groups: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand a TARGET to inventory names, in inventory order; any doubt is a UsageError (see the module doc)."""
    if not target.strip():
        raise UsageError("the TARGET is empty (an unset variable?); it names no node.", EMPTY_HINT)
    if not nodes:
        raise UsageError("the inventory has no nodes.", "add nodes to factory.yaml (see `factoryctl init`).")
    if gpu_slashes(target):  # no name holds a `/`: this is `node/GPUS` given to a command that takes whole nodes
        whole = "".join(op + _without_gpus(term) for op, term in split_terms(target.strip()))
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


def _without_gpus(term: str) -> str:
    """`n[01-08/2]/0` -> `n[01-08/2]`: a term without its `/GPUS` part."""
    slashes = gpu_slashes(term)
    return term[: slashes[0]].strip() if slashes else term


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
    if node_set_size(term) <= len(known):  # the smaller side is walked: a short term is expanded
        return known.intersection(expand_node_set(term))
    node_set = _node_set(term)  # `n[1-100000]` against 8 nodes: each node is looked up, 100,000 names never made
    return {name for name in known if name in node_set}


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


def _closest(term: str, words: Sequence[str], cutoff: float = 0.6) -> list[str]:
    """The words nearest `term`, all of them when several are as near (`@rack-`: `@rack-a` and `@rack-b`).

    More ties than three (`gpu17` among `gpu01`-`gpu16`) suggest one, as difflib ranks them (the greatest word).
    """
    matcher, scored = difflib.SequenceMatcher(), list[tuple[float, str]]()
    matcher.set_seq2(term)  # as get_close_matches: the quick bounds first, so 200,000 nodes stay fast
    for word in words:
        matcher.set_seq1(word)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff:
            score = matcher.ratio()
            if score >= cutoff:
                scored.append((score, word))
    best = max((score for score, _ in scored), default=0.0)
    near = [word for score, word in scored if score == best]
    return near if len(near) <= 3 else [max(near)]


def _did_you_mean(unknown: list[str], nodes: Sequence[str], groups: Mapping[str, Sequence[str]]) -> str:
    """A suggestion per unknown element with a near name (of the first MAX_SUGGESTED_TERMS), and where names are."""
    spaced = [term for term in unknown if len(term.split()) > 1]
    if spaced:  # `gpu01 gpu02`, from $(cat nodes.txt): one term, as the shell passed one word
        return f"separate nodes with commas, not spaces: `{','.join(spaced[0].split())}`."
    words = ["all", *nodes, *(f"@{g}" for g in groups)]
    by_key = _number_keys(words)  # once: per term, 1,000 typos against 2,000 nodes took 19 s
    near = [
        match
        for term in unknown[:MAX_SUGGESTED_TERMS]
        for match in (_same_numbers(term, by_key) or _closest(term, words))
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


def _number_keys(words: Sequence[str]) -> dict[tuple[str, ...], str]:
    """Each word by its `_number_key`, the first word when several share one."""
    by_key: dict[tuple[str, ...], str] = {}
    for word in words:
        by_key.setdefault(_number_key(word), word)
    return by_key


def _same_numbers(term: str, by_key: Mapping[tuple[str, ...], str]) -> list[str]:
    """The names written like `term` but for case and zero padding (`gpu3`, `GPU03` -> `gpu03`), if there are some.

    The closest string is often another node (`gpu3` is nearer `gpu13` than `gpu03`), so the same numbers come first.
    A node set is matched name by name and the names that match are folded again: `gpu[1-4]` -> `gpu[01-04]`.
    `by_key` is `_number_keys` of the names.
    """
    if term.startswith("@") or "[" not in term:
        found = by_key.get(_number_key(term))
        return [found] if found is not None else []
    if check_size(term, limit=2**62) > MAX_FOLDED_NAMES:  # too many names to fold one by one: difflib suggests
        return []
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
    slashes = gpu_slashes(target)
    if not slashes:
        return target, None
    if len(slashes) > 1:
        raise UsageError(
            f"`{target}` has more than one `/GPUS`; one `/GPUS` ends a TARGET and applies to all its nodes.",
            "write e.g. n[04,06]/0, or run the command once per node.",
        )
    return target[: slashes[0]], _gpu_indexes(target[slashes[0] + 1 :])


_GPU_HINT = "write GPUs as 0, 0-3 or 0,2,5 after the `/` (digits 0-9; a range names both ends)."


def _gpu_indexes(gpu_part: str) -> list[int]:
    """The GPU indexes of a `/GPUS` list; each element that is no index or range is a UsageError naming it."""
    indexes: set[int] = set()
    for element in gpu_part.split(","):
        match = _GPU_ELEMENT.fullmatch(element)
        if match is None:
            named = f"`{element.strip()}` is not a GPU index or range" if element.strip() else "an element is empty"
            raise UsageError(f"`/{gpu_part}`: {named}.", _GPU_HINT)
        first, last = (_gpu_index(digits) for digits in (match[1], match[2] or match[1]))
        if first > last:
            raise UsageError(f"`/{gpu_part}`: the range `{element.strip()}` runs backwards.", _GPU_HINT)
        indexes.update(range(first, last + 1))
    return sorted(indexes)


def _gpu_index(digits: str) -> int:
    """A GPU index from ASCII digits; a UsageError past MAX_GPUS (never int() of thousands of digits)."""
    index = int(digits) if len(digits) <= 6 else MAX_GPUS
    if index >= MAX_GPUS:
        raise UsageError(
            f"GPU {digits} is out of range: a node has at most {MAX_GPUS} GPUs (0-{MAX_GPUS - 1}).",
            "write GPUs as 0, 0-3 or 0,2,5 after the `/`.",
        )
    return index
