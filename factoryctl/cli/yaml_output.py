"""`-o yaml`'s text: PyYAML's `safe_dump`, from libyaml's emitter when PyYAML has it, the same bytes either way.

A YAML listing of 100,000 audit entries took 25 s of CPU in PyYAML's own emitter; libyaml's is ten times as fast,
but does not write quite the same text (see `yaml_text`), and a script must get the same output whichever PyYAML
is installed. Choosing between the two emitters, and checking that the fast one wrote what the slow one would, is
this module's one job; render.py (`dump_yaml`) imports it when YAML is asked for, so `--help` loads nothing of it.
"""

from __future__ import annotations

import re


def yaml_text(document: object, unicode: bool) -> str:
    """`yaml.safe_dump` of `document` (keys in order, non-ASCII escaped unless `unicode`), from libyaml when it can.

    libyaml's emitter (`CSafeDumper`) is ten times as fast as PyYAML's own (100,000 audit entries took 25 s of CPU in
    it), and writes the same text but for double-quoted strings: it folds long ones at other places and escapes
    some characters (an emoji, NEL) that PyYAML writes as they are. Text holding a double-quoted string (one starts
    a line or follows `: ` or `- `; a `"` inside a plain or single-quoted value does not count: one reason quoting a
    ticket sent every page back to the slow emitter) is written again by PyYAML's emitter, so the output is the same
    byte for byte whichever PyYAML is installed.
    """
    import yaml

    fast = getattr(yaml, "CSafeDumper", None)  # only where PyYAML was built with libyaml
    if fast is not None:
        try:
            text = str(yaml.dump(document, Dumper=fast, sort_keys=False, allow_unicode=unicode))
        except UnicodeEncodeError:  # a lone surrogate (a path's byte that is not UTF-8): PyYAML's escapes it
            text = '"'
        if not _DOUBLE_QUOTED.search(text):
            return text
    return str(yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode))


#: Where a double-quoted scalar starts in block-style YAML: a line's start (after its indent), after `: ` or `- `.
_DOUBLE_QUOTED = re.compile(r'^\s*"|: "|- "', re.MULTILINE)
