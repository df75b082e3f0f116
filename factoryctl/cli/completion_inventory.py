"""factory.yaml read for shell completion: libyaml's parser under config_yaml.py's checks, for the first TAB after an edit.

The first TAB after factory.yaml changed parsed it with the pure-Python YAML loader, which config.py keeps for its
line and column positions: 0.6-0.7 s at 2,000 nodes, felt at the TAB pressed right after saving the file. A TAB
shows no error, so positions are not needed: here libyaml (yaml's C parser) reads the text into events, and the
rest is what `load_config` runs (`parse_config(loader=...)`): schema, range expansion and groups. Between the two:

- a simple document (no anchor, alias, tag or merge key, each key text given once: a factory.yaml as `init` writes
  it) becomes data straight from the events (`_simple_data`), as SafeConstructor would make it after config_yaml.py's
  checks, which find nothing in such a document but racks and labels to read as text;
- any other is composed into nodes (`_compose`) as PyYAML's composer composes them, then constructed by PyYAML, with
  config_yaml.py's four checks made on the way where they can be (else by config_yaml.py's own walks, in their words).

Both loop instead of recursing (libyaml's own composer recurses in C and crashed the process at 100,000 `[`): deeper
than `MAX_DEPTH` is config_yaml.py's "nested too deeply". That TAB took 0.33 s at 2,000 nodes with PyYAML's composer
and four walks of the nodes; the data is now read in a third of the time. Any error, or a text where the two parsers
are known to differ (a tab, a `?`, a comment after `>-`, a `%` directive, characters the pure reader refuses,
Unicode line breaks, a BOM), goes to the full parse, so a file `load_config` refuses still offers nothing and one
it accepts offers the same names.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from yaml.nodes import Node

    from factoryctl.config import FactoryConfig

#: Where libyaml and PyYAML's pure parser may read a text differently (libyaml takes `a:<TAB>b`, a `?` in a plain
#: scalar in flow style, `{status: flaky?}`, and a comment right after a block scalar's header, `>-# moved`; a
#: directive line; Unicode line breaks, a byte order mark, carriage returns): such a text is parsed in full.
_UNUSUAL = re.compile(r"[\t\r\x85\u2028\u2029\ufeff?]|^%|[|>][-+0-9]*#", re.MULTILINE)
#: Collections nested deeper than this are not read quickly: `_simple_data` leaves them to `_compose`, which refuses
#: them as nested too deeply (RecursionError, as PyYAML's composer some hundreds of levels down; completion then asks
#: the full parse what it makes of them). factory.yaml nests four levels.
MAX_DEPTH = 100
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
#: Where a node is, as far as config_yaml.py's `_read_as_text` cares: in no place of interest, the document, `nodes`, a
#: node entry, a `rack` value, an entry's `labels`, a label value (the last two retagged as text when scalars).
_OTHER, _ROOT, _NODES, _ENTRY, _RACK, _LABELS, _LABEL = range(7)


def completion_config(text: str, path: Path) -> FactoryConfig:
    """`parse_config(text, path)` as completion needs it, fast when it can be; a FactoryError when the file is invalid."""
    from factoryctl.config import parse_config

    with _no_cycle_collection():  # thousands of YAML nodes: the collector ran many times for no cycle
        loader = _event_loader(text)
        if loader is not None:
            try:
                return parse_config(text, path, loader=loader)
            except Exception:  # whatever the quick read refused (or failed at), the full parse says
                pass
        return parse_config(text, path)


def _event_loader(text: str) -> type[Any] | None:
    """A SafeLoader whose events come from libyaml; None without libyaml or for a text the parsers may differ on."""
    from yaml.reader import Reader

    try:
        from yaml._yaml import CParser  # what yaml.CSafeLoader parses with
    except ImportError:  # PyYAML built without libyaml
        return None
    if _UNUSUAL.search(text) or Reader.NON_PRINTABLE.search(text):
        return None
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.resolver import Resolver

    class EventLoader(Composer, CParser, SafeConstructor, Resolver):
        """libyaml's events, read into data (`simple_data`) or composed and checked (`_compose`) for SafeConstructor."""

        line = column = 0  # config_yaml.py's message for nesting too deep names line 1: positions are not kept

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self.checks = _Checks()
            self.text = stream

        def simple_data(self) -> tuple[bool, Any]:
            """(True, the data) of a simple document (`_simple_data`); (False, None) for any other."""
            try:
                return True, _simple_data(self, CParser(self.text))
            except Exception:  # not simple (or not valid): composed into nodes, as PyYAML's composer would
                return False, None

        def get_single_node(self) -> Node | None:
            return _compose(self, self.checks)

        def checks_made_composing(self, root: Node, where: str) -> bool:
            """Finish config_yaml.py's checks of the nodes `_compose` made, if it could; False: load_yaml makes them."""
            return self.checks.finish(root, where)

    return EventLoader


class _Checks:
    """What `_compose` found of config_yaml.py's four checks (`load_yaml`): whether they may fail, and what to retag."""

    def __init__(self) -> None:
        #: A key that is not a plain name, or given twice in its mapping (or a key node shared by an alias, which a
        #: retag could change before config_yaml.py's check of key types): config_yaml.py's own walks check such a file.
        self.doubtful = False
        #: Whether a merge key (`<<`) was seen: its sizes are checked by config_merge.py (no merge, nothing to check).
        self.merges = False
        #: The scalars config_yaml.py's `_read_as_text` looks at: `nodes.<key>.rack` and `nodes.<key>.labels.<label>`.
        self.text_values: list[Node] = []

    def finish(self, root: Node, where: str) -> bool:
        """Retag the racks and labels and check merge sizes as config.py would; False (nothing done) when doubtful."""
        if self.doubtful:
            return False
        from factoryctl.config_merge import check_merge_sizes
        from factoryctl.config_yaml import NOT_TEXT_TAGS

        for node in self.text_values:
            if node.tag in NOT_TEXT_TAGS:
                node.tag = _STR
        if self.merges:
            check_merge_sizes(root, where)
        return True


#: What plain scalars may be in a simple document: constructed from their text alone, into values that do not change.
_SIMPLE_TAGS = frozenset(f"tag:yaml.org,2002:{kind}" for kind in ("str", "int", "float", "bool", "null", "timestamp"))


class _NotSimple(Exception):
    """A document `_simple_data` leaves to `_compose`."""


def _simple_data(loader: Any, parser: Any) -> Any:  # noqa: ANN401 - the EventLoader, a CParser, YAML's data: untyped
    """The data of a simple document, as SafeConstructor constructs it after config_yaml.py's checks; else _NotSimple.

    Simple: no anchor, alias or tag, no key given twice or that is not text (no merge key), plain scalars of the
    types above, nesting within `MAX_DEPTH`: then config_yaml.py's checks find nothing and only retag racks and labels
    (here read as their text), and no node is needed: each value is made as the event arrives (a plain scalar's
    once per text), dicts and lists as SafeConstructor makes them. 0.1 s at 2,000 nodes before, composing and
    constructing; anything else is composed (`_compose`) and constructed by PyYAML.
    """
    from yaml.events import MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent, SequenceStartEvent

    from factoryctl.config_yaml import NOT_TEXT_TAGS

    if not _simple_start(loader, parser):
        return None
    get = parser.get_event
    plain: dict[str, tuple[str, Any]] = {}  # a plain scalar's text -> its tag and value
    stack: list[tuple[Any, int]] = []  # the collections being read (a dict or a list) and their places
    keys: list[str | None] = []  # for each, the key awaiting its value (a mapping's)
    data: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is ScalarEvent or kind is SequenceStartEvent or kind is MappingStartEvent:
            if event.anchor is not None or event.tag is not None:
                raise _NotSimple
            if kind is ScalarEvent:
                tag, value = _simple_scalar(loader, event, plain)
            else:
                tag, value = None, [] if kind is SequenceStartEvent else {}
        elif kind is SequenceEndEvent or kind is MappingEndEvent:
            stack.pop()
            keys.pop()
            if stack:
                continue
            break
        else:
            raise _NotSimple  # an alias
        if not stack:
            data, role = value, _ROOT
        else:
            placed = _simple_place(stack, keys, event if kind is ScalarEvent else None, tag, value, NOT_TEXT_TAGS)
            if placed is None:  # a key, awaiting its value
                continue
            role = placed
        if kind is ScalarEvent:
            if not stack:
                break
            continue
        if len(stack) >= MAX_DEPTH:
            raise _NotSimple
        stack.append((value, role))
        keys.append(None)
    _simple_end(parser)
    return data


def _simple_place(
    stack: list[tuple[Any, int]],
    keys: list[str | None],
    scalar: Any,  # noqa: ANN401 - the ScalarEvent (libyaml's: untyped), None for a collection
    tag: str | None,
    value: Any,  # noqa: ANN401 - YAML's data
    not_text: frozenset[str],
) -> int | None:
    """Put `value` into the collection being read (`stack[-1]`) and return its place; None for a key.

    A key must be text given once (else _NotSimple); it waits in `keys` for its value. A rack or label's plain
    scalar YAML reads as another type (`not_text`) is its text, as config_yaml.py's `_read_as_text` retags it.
    """
    container, parent = stack[-1]
    key = keys[-1]
    if type(container) is list:
        role = _ENTRY if parent == _NODES else _LABEL if parent == _LABELS else _OTHER
    elif key is None:  # a key: text, given once
        if scalar is None or tag != _STR or value in container:
            raise _NotSimple
        keys[-1] = value
        return None
    else:
        keys[-1] = None
        role = _value_role(parent, key)
    if role in (_RACK, _LABEL) and scalar is not None and tag in not_text:
        value = scalar.value
    if key is None:
        container.append(value)
    else:
        container[key] = value
    return role


def _simple_start(loader: Any, parser: Any) -> bool:  # noqa: ANN401 - the EventLoader and its CParser: untyped
    """Read up to the document's first event: False for an empty stream; _NotSimple where tags go by path."""
    from yaml.events import StreamEndEvent

    if loader.yaml_path_resolvers:
        raise _NotSimple
    parser.get_event()  # STREAM-START
    if isinstance(parser.peek_event(), StreamEndEvent):
        return False
    parser.get_event()  # DOCUMENT-START
    return True


def _simple_end(parser: Any) -> None:  # noqa: ANN401 - the CParser: untyped
    """Read the document's end; _NotSimple when a second document follows."""
    from yaml.events import StreamEndEvent

    parser.get_event()  # DOCUMENT-END
    if not isinstance(parser.peek_event(), StreamEndEvent):
        raise _NotSimple  # a second document


def _simple_scalar(loader: Any, event: Any, plain: dict[str, tuple[str, Any]]) -> tuple[str, Any]:  # noqa: ANN401
    """A scalar event's tag and value: quoted, its text; plain, as resolved once per text (kept in `plain`)."""
    if not event.implicit[0]:
        return _STR, event.value
    known = plain.get(event.value)
    if known is None:
        known = plain[event.value] = _plain_scalar(loader, event.value, event.implicit)
    return known


def _plain_scalar(loader: Any, text: str, implicit: tuple[bool, bool]) -> tuple[str, Any]:  # noqa: ANN401 - untyped
    """A plain scalar's tag and value, as the loader resolves and constructs it; _NotSimple for a type not simple."""
    from yaml.nodes import ScalarNode

    tag: str = loader.resolve(ScalarNode, text, implicit)
    if tag not in _SIMPLE_TAGS:
        raise _NotSimple
    return tag, loader.yaml_constructors[tag](loader, ScalarNode(tag, text))


def _compose(loader: Any, checks: _Checks) -> Node | None:  # noqa: ANN401 - the EventLoader (libyaml's CParser: untyped)
    """The document's root node, as PyYAML's `Composer.get_single_node` composes it, in a loop; `checks` filled in.

    The same nodes: tags resolved by the loader (a plain scalar's once per text: it depends on nothing else),
    anchors and aliases shared, the same errors for an undefined alias, a repeated anchor or a second document.
    """
    from yaml.composer import Composer, ComposerError
    from yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent, StreamEndEvent
    from yaml.nodes import MappingNode, ScalarNode, SequenceNode

    if loader.yaml_path_resolvers:  # tags by path (none in factoryctl): PyYAML's composer, config_yaml.py's checks
        checks.doubtful = True
        return Composer.get_single_node(loader)
    get, resolve = loader.get_event, loader.resolve
    get()  # STREAM-START
    if isinstance(loader.peek_event(), StreamEndEvent):
        get()
        return None
    get()  # DOCUMENT-START
    anchors: dict[str, Node] = {}
    plain: dict[str, str] = {}  # a plain scalar's text -> its resolved tag
    stack: list[_Frame] = []
    root: Node | None = None
    while root is None or stack:
        event = get()
        kind = type(event)
        if kind is AliasEvent:
            node = anchors.get(event.anchor)
            if node is None:
                raise ComposerError(None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
        elif kind is ScalarEvent or kind is SequenceStartEvent or kind is MappingStartEvent:
            anchor, tag = event.anchor, event.tag
            if anchor is not None and anchor in anchors:
                raise ComposerError(
                    f"found duplicate anchor {anchor!r}; first occurrence",
                    anchors[anchor].start_mark,
                    "second occurrence",
                    event.start_mark,
                )
            if kind is ScalarEvent:
                if tag is None or tag == "!":
                    if event.implicit[0]:
                        tag = plain.get(event.value)
                        if tag is None:
                            tag = plain[event.value] = resolve(ScalarNode, event.value, event.implicit)
                    else:
                        tag = resolve(ScalarNode, event.value, event.implicit)
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            else:
                node_class = SequenceNode if kind is SequenceStartEvent else MappingNode
                if tag is None or tag == "!":
                    tag = resolve(node_class, None, event.implicit)
                node = node_class(tag, [], event.start_mark, None, flow_style=event.flow_style)
            if anchor is not None:
                anchors[anchor] = node
        else:  # SEQUENCE-END or MAPPING-END
            stack.pop().node.end_mark = event.end_mark
            continue
        role = _attach(node, kind is AliasEvent, stack, checks) if stack else _ROOT
        if root is None:
            root = node
        if kind is SequenceStartEvent or kind is MappingStartEvent:
            if len(stack) >= MAX_DEPTH:
                raise RecursionError("collections nested too deeply")
            stack.append(_Frame(node, role))
    get()  # DOCUMENT-END
    loader.anchors = {}
    if not isinstance(loader.peek_event(), StreamEndEvent):
        event = get()
        raise ComposerError(
            "expected a single document in the stream", root.start_mark, "but found another document", event.start_mark
        )
    get()  # STREAM-END
    return root


class _Frame:
    """A collection being composed: its node, its place (`_ROOT`...) and, for a mapping, the key awaiting its value."""

    __slots__ = ("key", "keys", "node", "role")

    def __init__(self, node: Node, role: int) -> None:
        self.node = node
        self.role = role
        self.key: Node | None = None
        self.keys: set[str] = set()


def _attach(node: Node, alias: bool, stack: list[_Frame], checks: _Checks) -> int:
    """Put `node` into the collection being composed, check it if it is a key, and say its place (`_ROOT`...)."""
    from yaml.nodes import MappingNode, ScalarNode

    frame = stack[-1]
    parent = frame.node
    if not isinstance(parent, MappingNode):  # a sequence: its items are where the sequence is, but for an index
        parent.value.append(node)
        role = _ENTRY if frame.role == _NODES else _LABEL if frame.role == _LABELS else _OTHER
    elif frame.key is None:  # the key of the next pair: config_yaml.py's checks of repeated keys and key types
        frame.key = node
        if alias or not isinstance(node, ScalarNode):
            checks.doubtful = True
        elif node.tag == _MERGE:
            checks.merges = True
        elif node.tag != _STR or node.value in frame.keys:
            checks.doubtful = True
        else:
            frame.keys.add(node.value)
        return _OTHER  # nothing under a key is walked by config_yaml.py's checks but for its own key
    else:
        key, frame.key = frame.key, None
        parent.value.append((key, node))
        role = _value_role(frame.role, key.value if isinstance(key, ScalarNode) else None)
    if role in (_RACK, _LABEL) and isinstance(node, ScalarNode):
        checks.text_values.append(node)
    return role


def _value_role(parent: int, key: object) -> int:
    """The place of a mapping's value under `key`, from the mapping's place."""
    if parent == _ROOT:
        return _NODES if key == "nodes" else _OTHER
    if parent == _NODES:
        return _ENTRY
    if parent == _ENTRY:
        return _RACK if key == "rack" else _LABELS if key == "labels" else _OTHER
    return _LABEL if parent == _LABELS else _OTHER


@contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Python's cyclic garbage collector paused meanwhile (a TAB is a short process), then as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
