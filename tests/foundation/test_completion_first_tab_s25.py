"""The first TAB after an edit of factory.yaml, session 25: data straight from libyaml's events, names not expanded.

That TAB (0.33 s at 2,000 nodes) composed every YAML node with PyYAML's composer, walked them four times for
config.py's checks, constructed them, and asked ClusterShell to expand each of 1,600 keys naming one node. A simple
document is now read into data as the events arrive, any other is composed with the checks made on the way, and a
key naming one node is that node. These tests show the work is gone and the answers are not changed: the same data
as the full parse, the same nodes as PyYAML's composer, the same names offered and the same files refused.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from factoryctl import textfile
from factoryctl.cli.completion_cache import Inventory
from factoryctl.cli.completion_inventory import _event_loader, completion_config
from factoryctl.config import parse_config
from factoryctl.config_yaml import load_yaml as _load_yaml
from factoryctl.errors import ConfigError, UsageError
from factoryctl.targets import ONE_NAME, _node_set, expand_node_set

#: Simple documents (no anchor, alias, tag or merge key): racks and labels YAML reads as numbers, dates or booleans,
#: labels in a list, nulls, quoted keys, block scalars, flow style, timestamps and floats elsewhere.
SIMPLE = {
    "block": (
        "name: big\nnodes:\n  gpu001:\n    host: 10.0.0.1\n    rack: 12\n    gpus: 8\n    labels:\n      gen: 05\n"
        "      ib: no\n      day: 2024-01-01\n      f: 1e3\n  gpu002: {rack: 0x1F, labels: {gen: 1_000, 'x': ''}}\n"
        "  h[1-3]:\n    sim: h100-sxm\n    gpus: 4\n  ws:\n  'gpu[004-006]!gpu005': {gpus: 2}\n"
        "groups:\n  early: '@late&gpu[004-006]'\n  late: gpu001,h2\n"
    ),
    "labels in a list, racks as text and null": (
        "name: l\nnodes:\n  a1: {labels: [5, no, x], rack: 1:20}\n  a2:\n    rack: ~\n    labels:\n      k: |\n        text\n"
    ),
    "flow": "{name: f, 'nodes': {'n[01-20]': {gpus: 1}, m1: {}}, groups: {g: 'n[01-05]'}}\n",
    "a scalar document": "just text\n",
    "an empty document": "# nothing yet\n",
    "an unknown key holding floats (refused)": "name: a\nextra: {x: .inf, y: -1.5, t: 2001-12-14t21:59:43.10-05:00}\n",
}

#: Documents that are not simple (anchors, aliases, tags, merge keys, keys that are not text or given twice), or that
#: the full parse refuses: composed into nodes, checked on the way or by config.py's walks.
COMPOSED = {
    "anchors and merges": (
        "name: m\nnodes:\n  a[1-4]: &base {gpus: 2, rack: r1, labels: {pool: 7}}\n  b[1-2]:\n    <<: *base\n"
        "    rack: 12\n  c1: {<<: *base, sim: {profile: a100-sxm4-80gb, seed: 3}}\ngroups:\n  all-a: a[1-4]\n"
    ),
    "an alias under rack retags its anchor": "name: a\nnodes:\n  n1: {labels: {gen: &g 5}, rack: *g, gpus: 2}\n",
    "a rack value shared with a later key": "name: a\nnodes:\n  n1: {rack: &r 12}\n  *r : {}\n",
    "a tag": "name: !!str 12\nnodes:\n  n1: {rack: !!int '7'}\n",
    "a key given twice": "name: a\nnodes:\n  n1: {}\n  n1: {gpus: 2}\n",
    "a key that is a number": "name: a\nnodes:\n  123: {}\n",
    "a key that is a list": "name: a\nnodes:\n  [a, b]: {}\n",
    "a merge of a scalar": "name: a\nnodes:\n  n1: {<<: 5}\n",
    "a plain `=`": "name: a\nnodes:\n  n1: {labels: {x: =}}\n",
    "nesting deeper than the quick read goes": "name: a\nnodes:\n  n1: {labels: {x: " + "[" * 150 + "]" * 150 + "}}\n",
    "two documents": "name: a\n---\nname: b\n",
    "an undefined alias": "name: *x\n",
    "a repeated anchor": "name: &a x\nnodes: &a {}\n",
}


def _offered(text: str, path: Path, quick: bool) -> Inventory | str:
    try:
        return Inventory.of(completion_config(text, path) if quick else parse_config(text, path))
    except ConfigError:
        return "refused"


def _data(text: str, loader: type[Any] | None = None) -> Any:
    """The document's data as config.py reads it (with `loader`: as completion does), or "refused"."""
    try:
        return _load_yaml(text, "w", loader)[0]
    except ConfigError:
        return "refused"


@pytest.mark.parametrize("shape", list(SIMPLE))
def test_a_simple_document_is_read_without_composing_nodes(
    shape: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = SIMPLE[shape]
    loader = _event_loader(text)
    assert loader is not None
    composed: list[object] = []
    begin = yaml.nodes.CollectionNode.__init__

    def noted(node: yaml.nodes.CollectionNode, *args: Any, **kwargs: Any) -> None:
        composed.append(node)
        begin(node, *args, **kwargs)

    monkeypatch.setattr(yaml.nodes.CollectionNode, "__init__", noted)
    quick = _data(text, loader)
    assert composed == []  # no mapping or sequence composed: the data came straight from the events
    monkeypatch.undo()
    assert repr(quick) == repr(_data(text))  # racks and labels as text, as config.py's checks make them
    path = tmp_path / "factory.yaml"
    assert _offered(text, path, quick=True) == _offered(text, path, quick=False)


@pytest.mark.parametrize("shape", list(COMPOSED))
def test_other_documents_are_composed_as_pyyaml_composes_them(shape: str, tmp_path: Path) -> None:
    text, path = COMPOSED[shape], tmp_path / "factory.yaml"
    loader = _event_loader(text)
    assert loader is not None
    assert loader(text).simple_data() == (False, None)
    ours = _data(text, type("NotSimple", (loader,), {"simple_data": None}))
    assert ours == "refused" or repr(ours) == repr(_data(text))  # whatever it refuses, the full parse says
    assert _offered(text, path, quick=True) == _offered(text, path, quick=False)


def test_a_file_with_anchors_is_checked_while_composing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[object] = []
    walk = textfile.yaml_children

    def noted(node: yaml.Node) -> Any:
        walks.append(node)
        return walk(node)

    monkeypatch.setattr(textfile, "yaml_children", noted)
    text = COMPOSED["an alias under rack retags its anchor"]
    assert Inventory.of(completion_config(text, tmp_path / "factory.yaml")).nodes == {"n1": 2}
    assert walks == []  # config.py's four walks of the nodes were made while composing
    completion_config(COMPOSED["anchors and merges"], tmp_path / "factory.yaml")
    assert len(walks) == 1  # only the merge keys' sizes, by config_merge.py's own walk
    with pytest.raises(ConfigError, match="read by YAML as a number"):  # a doubtful key: config.py's walks say
        completion_config(COMPOSED["a rack value shared with a later key"], tmp_path / "factory.yaml")


def test_a_key_naming_one_node_does_not_ask_clustershell(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("name: a\nnodes:\n  gpu01: {}\n  a.b-c_d:e: {}\n  n" + "1" * 18 + ": {}\n")
    probe = (
        "import sys\nfrom factoryctl.config import load_config\nfrom pathlib import Path\n"
        "print(list(load_config(Path(sys.argv[1])).nodes), 'ClusterShell.NodeSet' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(config)], capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["['gpu01',", "'a.b-c_d:e',", f"'n{'1' * 18}']", "False"], done.stderr


@pytest.mark.parametrize(
    "name", ["gpu01", "all", "0", "n00", "n007", "a.1.b2", "x-01-02", "n1:2", "9", "a--1", "N01", "n" + "9" * 18]
)
def test_clustershell_expands_such_a_key_to_itself(name: str) -> None:
    assert ONE_NAME.fullmatch(name)
    assert list(_node_set(name)) == [name] == expand_node_set(name)  # what it was asked, and what is said now


def test_a_longer_number_is_still_clustershells_to_refuse(tmp_path: Path) -> None:
    long = "n" + "1" * 101
    assert not ONE_NAME.fullmatch("n" + "1" * 19)
    with pytest.raises(UsageError):
        expand_node_set(long)
    text = f"name: a\nnodes:\n  {long}: {{}}\n"
    assert _offered(text, tmp_path / "factory.yaml", quick=True) == "refused" == _offered(text, tmp_path, quick=False)
