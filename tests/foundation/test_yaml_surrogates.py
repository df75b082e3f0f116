"""`-o yaml` of a text holding a lone surrogate (a path's byte that is not UTF-8) is written as PyYAML writes it.

libyaml's emitter, used for speed since the audit listings went page by page, refuses a lone surrogate with a
UnicodeEncodeError: `config show -o yaml` of a config in a directory named with such a byte ended in "unexpected
error", where PyYAML's own emitter escapes it (`\\uDCFF`).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from factoryctl.cli.yaml_output import yaml_text


def test_a_lone_surrogate_is_escaped_as_pyyaml_escapes_it() -> None:
    document = {"state_dir": "/srv/d\udcff/state", "items": [{"reason": 'a "quoted" ticket'}]}
    for unicode in (True, False):
        assert yaml_text(document, unicode) == yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode)


def test_config_show_yaml_of_a_directory_named_with_a_byte_that_is_not_utf8(cli, tmp_path: Path) -> None:
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/d\xff"))
    folder.mkdir()
    config = folder / "factory.yaml"
    config.write_text(
        "name: lab\nstate_dir: state\nnodes:\n  ws: {transport: local, sim: {profile: a100-sxm4-80gb, gpus: 1}}\n"
    )
    shown = cli("--config", str(config), "config", "show", "-o", "yaml")
    assert shown.exit_code == 0, shown.stderr
    assert "d\\uDCFF" in shown.stdout
