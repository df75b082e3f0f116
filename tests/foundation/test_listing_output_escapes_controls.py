r"""JSON, YAML and CSV listings escape control characters in every string, as the table does.

Rows written by this version are escaped when stored, but a store from an older version (or forged) holds them raw:
`events -o json` printed U+009B (a one-character CSI) and the bidi isolates as they were. Already escaped text
(`\x1b`) and printable non-ASCII text (é, 中) come out unchanged.
"""

from __future__ import annotations

import json

import pytest
import yaml

from factoryctl.cli.render import Column, OutputFormat, render_listing

RAW = "C1:\u009b31mred \u2066iso\u2069 \u061c \u202eflip \x1b[2J"
ESCAPED = r"C1:\x9b31mred \u2066iso\u2069 \u061c \u202eflip \x1b[2J"
#: JSON and YAML escape C0 controls in their own way: those read back as they were (a trace's job id `a\nb`).
ESCAPED_BUT_C0 = ESCAPED.replace(r"\x1b", "\x1b")
KEPT = r"é 中 already \x1b escaped"
COLUMNS = [Column("message", "MESSAGE")]


def _items() -> list[dict[str, object]]:
    return [{"message": RAW, "nodes": [RAW], "labels": {RAW: RAW}, "plain": KEPT, "watts": 450}]


@pytest.mark.parametrize("output", [OutputFormat.json, OutputFormat.yaml])
def test_json_and_yaml_escape_every_string(output: OutputFormat) -> None:
    text = render_listing(_items(), [{"node": "n1", "error": RAW}], COLUMNS, output)
    document = json.loads(text) if output is OutputFormat.json else yaml.safe_load(text)
    (item,) = document["items"]
    expected = ESCAPED_BUT_C0
    assert item == {
        "message": expected,
        "nodes": [expected],
        "labels": {expected: expected},
        "plain": KEPT,
        "watts": 450,
    }
    assert document["errors"] == [{"node": "n1", "error": expected}]
    assert not any(0x80 <= ord(c) < 0xA0 or c in "\u2066\u2069\u061c\u202e\x1b" for c in text)


def test_csv_escapes_every_string() -> None:
    text = render_listing(_items(), [], COLUMNS, OutputFormat.csv)
    assert ESCAPED in text
    assert KEPT in text
    assert not any(0x80 <= ord(c) < 0xA0 or c in "\u2066\u2069\u061c\u202e\x1b" for c in text)
