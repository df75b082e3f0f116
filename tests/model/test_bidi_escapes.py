r"""Bidirectional controls in a node's text are escaped as `\u202e`, as its C0 and C1 controls are as `\x1b`.

The security review's agent named its GPU `fake\u202erow`: the right-to-left override reached tables, the store and
`-o json` raw (shown `fakewor`), while ESC in the same name was escaped. Every Bidi_Control character is now written
as its visible `\uXXXX` escape where node text enters the model (`escape_controls`).
"""

from __future__ import annotations

import json
import unicodedata

import pytest

from factoryctl.model.telemetry import BIDI_CONTROLS, GpuSample, NodeSample, escape_controls

#: Every bidi control Unicode lists, by name: the override the review used, the embeddings, isolates and marks.
NAMED = {
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE",
    "\u202a": "LEFT-TO-RIGHT EMBEDDING",
    "\u202b": "RIGHT-TO-LEFT EMBEDDING",
    "\u202c": "POP DIRECTIONAL FORMATTING",
    "\u2066": "LEFT-TO-RIGHT ISOLATE",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\u2068": "FIRST STRONG ISOLATE",
    "\u2069": "POP DIRECTIONAL ISOLATE",
    "\u200e": "LEFT-TO-RIGHT MARK",
    "\u200f": "RIGHT-TO-LEFT MARK",
    "\u061c": "ARABIC LETTER MARK",
}


def test_the_escaped_set_is_every_bidi_control() -> None:
    assert {chr(c) for c in BIDI_CONTROLS} == set(NAMED)
    assert all(unicodedata.name(c) == name for c, name in NAMED.items())


@pytest.mark.parametrize("control", sorted(NAMED))
def test_each_bidi_control_is_written_as_its_u_escape(control: str) -> None:
    escaped = escape_controls(f"fake{control}row")
    assert escaped == f"fake\\u{ord(control):04x}row"
    assert escape_controls(escaped) == escaped  # escaping twice changes nothing
    assert escaped.isprintable()


def test_bidi_and_c0_controls_are_escaped_together_and_other_text_is_kept() -> None:
    assert escape_controls("\x1b[31mRED\u202eé日本\u200d") == "\\x1b[31mRED\\u202eé日本\u200d"  # a ZWJ joins emoji


def test_a_gpu_and_node_text_reach_json_with_the_escape_not_the_control() -> None:
    hostile = "GPU\u202erow\u2066x\u2069"
    gpu = GpuSample.from_json(
        "n1",
        {
            "index": 0,
            "uuid": f"GPU-{hostile}",
            "name": hostile,
            "throttle_reasons": [hostile],
            "processes": [{"pid": 1, "name": hostile}],
            "null_reasons": {"power_w": hostile},
        },
    )
    sample = NodeSample("n1", 1_700_000_000.0, agent_version=hostile, message=hostile, gpus=(gpu,))
    text = json.dumps([gpu.as_json(), sample.agent_version, sample.message], ensure_ascii=False)
    assert not any(chr(c) in text for c in BIDI_CONTROLS)
    assert gpu.name == "GPU\\u202erow\\u2066x\\u2069"
    assert text.count("\\\\u202e") == 7  # name, uuid, throttle reason, process, null reason, version, message
