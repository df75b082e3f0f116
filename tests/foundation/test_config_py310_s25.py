"""A wrong value under `groups:` or a node's `labels:` is a config error on every Python factoryctl supports.

On Python 3.10 `dict[str, str]` is a `type` (a GenericAlias), so the schema walk behind the error's hint took it for
a model and crashed with "type object 'dict' has no attribute 'model_fields'" (an unexpected error, not exit 3).
CI runs 3.11, where it never failed: these tests were seen failing under 3.10 before the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError, ExitCode

F = Path("f.yaml")


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "nodes: {gpu01: {}, gpu02: {}}\ngroups:\n  g: [gpu01, gpu02]\n",
            "f.yaml:3:6: `groups.g`: a group is one node set written as text, not a YAML list.",
            'write `g: gpu[01-02]` or `g: "gpu01,gpu02"`.',
        ),
        (
            "nodes: {gpu01: {}}\ngroups:\n  g: 5\n",
            "f.yaml:3:6: `groups.g`: Input should be a valid string.",
            "`groups`: Named node sets, used as `@name`.",
        ),
        (
            "nodes: {gpu01: {labels: {a: [1, 2]}}}\n",
            "f.yaml:1:29: `nodes.gpu01.labels.a`: Input should be a valid string.",
            "`labels`: Free labels for job constraints.",
        ),
    ],
)
def test_a_wrong_value_inside_a_mapping_of_strings_is_a_config_error(text: str, message: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, F)
    assert (caught.value.message, caught.value.hint) == (message, hint)
    assert caught.value.exit_code == ExitCode.CONFIG
