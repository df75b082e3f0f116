"""The first TAB after an edit of factory.yaml: read by libyaml, with the names and groups `load_config` gives.

That TAB parsed the file with the pure-Python YAML loader (0.6-0.9 s at 2,000 nodes). It now reads it with libyaml
under config.py's own checks (cli/completion_inventory.py); these tests show it offers exactly what the full parse
offers over several shapes of factory.yaml, refuses what it refuses, falls back to the full parse where the two
parsers differ (a tab), and that nesting too deep ends the TAB quietly, not in libyaml's crash.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from factoryctl.cli.completion_cache import Inventory
from factoryctl.cli.completion_inventory import _event_loader, completion_config
from factoryctl.config import FactoryConfig, parse_config
from factoryctl.errors import ConfigError

#: Valid files of several shapes: ranges and operators, groups naming groups (before their definition too), labels
#: and racks YAML would read as numbers, simulated nodes both ways, anchors and merge keys, flow style, comments.
VALID = {
    "ranges and groups": (
        "name: lab\nnodes:\n  gpu[01-03]: {gpus: 4}\n  s[1-2]: {sim: {gpus: 2}}\n  ws: {transport: local}\n"
        "groups:\n  sims: s[1-2]\n  mixed: s1,gpu01\n  most: '@mixed,gpu[02-03]!gpu03'\n"
    ),
    "block style, racks and labels": (
        "name: big  # the hall's nodes, é\nnodes:\n  gpu001:\n    host: 10.0.0.1\n    rack: 12\n"
        "    labels:\n      gen: 05\n      ib: no\n  gpu[002-010]!gpu005:\n    rack: a\n    gpus: 8\n"
        "  gpu005: {gpus: 0}\n  h[1-3]:\n    sim: h100-sxm\n    gpus: 4\n"
        "groups:\n  early: '@late&gpu[001-004]'\n  late: gpu[003-010]\n  odd: '@early^gpu[003-004],h2'\n"
    ),
    "anchors and merge keys": (
        "name: m\nssh: {user: ops}\nnodes:\n  a[1-4]: &base {gpus: 2, rack: r1, labels: {pool: train}}\n"
        "  b[1-2]:\n    <<: *base\n    rack: r2\n  c1: {<<: *base, sim: {profile: a100-sxm4-80gb, seed: 3}}\n"
        "groups:\n  all-a: a[1-4]\n  train: '@all-a,b[1-2],c1'\n"
    ),
    "flow style in one line": "{name: f, nodes: {'n[01-20]': {gpus: 1}, 'm[1-2]': {}}, groups: {g: 'n[01-05]'}}\n",
    "no nodes yet": "name: empty\n",
    "document markers": "---\nname: d\nnodes:\n  x[1-3]: {}\n...\n",
}

#: Files `load_config` refuses, for reasons in the YAML, the schema, the ranges and the groups.
INVALID = {
    "a key given twice": "name: a\nnodes:\n  n1: {}\n  n1: {gpus: 2}\n",
    "a key that is not a name": "name: a\nnodes:\n  123: {}\n",
    "an unknown key elsewhere": "name: a\ncontroler: {}\nnodes:\n  n1: {}\n",
    "a port out of range": "name: a\nssh: {port: 99999}\nnodes:\n  n[1-2]: {}\n",
    "a node in two keys": "name: a\nnodes:\n  n[1-3]: {}\n  n2: {}\n",
    "a group cycle": "name: a\nnodes:\n  n1: {}\ngroups:\n  x: '@y'\n  y: '@x'\n",
    "a tab after a colon": "name: a\nnodes:\n  n1:\t{}\n",
    "two documents": "name: a\n---\nname: b\n",
}

#: Texts libyaml reads and PyYAML 6.0.3's pure parser refuses (a re-read's fuzz; 6.0.4's reads them too): whatever
#: the installed PyYAML makes of them, the quick read is not used, and completion says what the full parse says.
DIFFERING = {
    "a ? in a flow mapping": "name: a\nnodes:\n  n[1-2]: {labels: {status: flaky?}}\n",
    "a comment right after a block scalar header": "name: a\nnodes:\n  n1:\n    labels:\n      note: >-# b\n        x\n",
}


def _inventory(text: str, path: Path, quick: bool) -> Inventory:
    loader = _event_loader(text) if quick else None
    assert not quick or loader is not None, "the quick read is not used for this text"
    return Inventory.of(parse_config(text, path, loader=loader))


@pytest.mark.parametrize("shape", list(VALID))
def test_the_quick_read_offers_what_the_full_parse_offers(shape: str, tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    full = _inventory(VALID[shape], path, quick=False)
    assert _inventory(VALID[shape], path, quick=True) == full
    assert Inventory.of(completion_config(VALID[shape], path)) == full


@pytest.mark.parametrize("shape", list(INVALID))
def test_a_file_the_full_parse_refuses_offers_nothing(shape: str, tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    with pytest.raises(ConfigError):
        parse_config(INVALID[shape], path)
    with pytest.raises(ConfigError):
        completion_config(INVALID[shape], path)
    loader = _event_loader(INVALID[shape])
    if loader is not None:  # libyaml reads `a:<TAB>b` as a mapping: such a text is never read quickly
        with pytest.raises(ConfigError):
            parse_config(INVALID[shape], path, loader=loader)


def _offered(text: str, path: Path, read: Callable[[str, Path], FactoryConfig]) -> Inventory | None:
    try:
        return Inventory.of(read(text, path))
    except ConfigError:
        return None


@pytest.mark.parametrize("shape", list(DIFFERING))
def test_a_text_the_parsers_read_differently_is_left_to_the_full_parse(shape: str, tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    assert _event_loader(DIFFERING[shape]) is None  # offered names for a file load_config refused (PyYAML 6.0.3)
    assert _offered(DIFFERING[shape], path, completion_config) == _offered(DIFFERING[shape], path, parse_config)


#: The CLI's entry point, saying on stderr at exit whether PyYAML's pure-Python scanner ran (the slow parse).
SCANNER_REPORTING = (
    "import sys, yaml.scanner\nran = []\nbegin = yaml.scanner.Scanner.__init__\n"
    "def noted(self):\n    ran.append(1)\n    begin(self)\nyaml.scanner.Scanner.__init__ = noted\n"
    "from factoryctl.cli.app import main\ntry:\n    main()\n"
    "finally:\n    print('pure' if ran else 'libyaml', file=sys.stderr)\n"
)


def complete(line: str, config: Path) -> tuple[list[str], str]:
    """bash's candidates for `line` (the last word completed), and which YAML scanner read factory.yaml."""
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": line, "COMP_CWORD": "-1"}
    env["FACTORYCTL_CONFIG"] = str(config)
    done = subprocess.run(
        [sys.executable, "-c", SCANNER_REPORTING], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr.strip()


def test_the_first_tab_after_an_edit_is_read_by_libyaml(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(VALID["ranges and groups"])
    assert complete("factoryctl gpus g", config) == (["gpu01", "gpu02", "gpu03"], "libyaml")
    config.write_text("#\tthe parsers differ on tabs: read in full\n" + VALID["ranges and groups"])
    assert complete("factoryctl gpus @", config) == (["@sims", "@mixed", "@most"], "pure")
    config.write_text("%YAML 1.1\n---\n" + VALID["ranges and groups"])  # and on directives
    assert complete("factoryctl gpus s", config) == (["s1", "s2"], "pure")


QUICK_READ = (
    "import sys\nfrom pathlib import Path\nfrom factoryctl.cli.completion_inventory import _event_loader\n"
    "from factoryctl.config import parse_config\nfrom factoryctl.errors import ConfigError\n"
    "text = Path(sys.argv[1]).read_text()\ntry:\n    parse_config(text, loader=_event_loader(text))\n"
    "except ConfigError as exc:\n    print(exc.message)\n"
)


def test_nesting_too_deep_offers_nothing_and_does_not_crash(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("name: a\nnodes: " + "[" * 100_000 + "]" * 100_000 + "\n")  # libyaml's own composer crashed
    done = subprocess.run([sys.executable, "-c", QUICK_READ, str(config)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr  # not libyaml's crash (139)
    # refused as too deep: by config.py's own words (PyYAML 6.0.3), or by libyaml's limit (6.0.4 stops at 1,000)
    assert done.stdout in (
        "<factory.yaml>:1:1: malformed YAML: collections nested too deeply to read.\n",
        "<factory.yaml>:2:1007: malformed YAML: exceeded maximum nesting depth.\n",
    )
    assert complete("factoryctl gpus g", config) == ([], "pure")  # the quick read refused it: the full parse says
