"""factory.yaml read for shell completion: libyaml's parser under config.py's own checks, for the first TAB after an edit.

The first TAB after factory.yaml changed parsed it with the pure-Python YAML loader, which config.py keeps for its
line and column positions: 0.6-0.7 s at 2,000 nodes, felt at the TAB pressed right after saving the file. A TAB
shows no error, so positions are not needed: here libyaml (yaml's C parser) reads the text into events, and
everything after that is what `load_config` runs: the same composer (so nesting too deep is the same
RecursionError, never libyaml's C recursion, which crashes the process at 100,000 `[`), key checks, constructor,
schema, range expansion and groups (`parse_config(loader=...)`). Any error there, or a text where the two parsers are
known to differ (a tab, a `?`, a comment after `>-`, a `%` directive, characters the pure reader refuses, Unicode
line breaks, a BOM), goes to the full parse, so a file `load_config` refuses still offers nothing and one it
accepts offers the same names.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig

#: Where libyaml and PyYAML's pure parser may read a text differently (libyaml takes `a:<TAB>b`, a `?` in a plain
#: scalar in flow style, `{status: flaky?}`, and a comment right after a block scalar's header, `>-# moved`; a
#: directive line; Unicode line breaks, a byte order mark, carriage returns): such a text is parsed in full.
_UNUSUAL = re.compile(r"[\t\r\x85\u2028\u2029\ufeff?]|^%|[|>][-+0-9]*#", re.MULTILINE)


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
        """libyaml's events, composed by PyYAML's own (Python) composer: CParser's own composer recurses in C."""

        line = column = 0  # config.py's message for nesting too deep names line 1: positions are not kept

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

    return EventLoader


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
