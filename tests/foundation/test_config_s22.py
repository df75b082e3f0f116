"""factory.yaml mistakes met in review 22: a merge-key bomb, unexpanded `$VARS`, nodes sharing an address, and
errors that spoke pydantic's or PyYAML's words instead of factory.yaml's.

Merge keys (`<<`) copied the merged pairs at each level, so 24 doubling lines took 13 s and 446 MB and 30 ate 3 GB
(every command and every completion TAB stalled); `state_dir: $XDG_STATE_HOME/...` made a directory named so.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.config_merge import MAX_MERGED_PAIRS
from factoryctl.errors import ConfigError

F = Path("f.yaml")


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, F)
    return caught.value


def _doubling(levels: int) -> str:
    """Each node's labels merge the previous node's twice: 2**levels pairs once flattened."""
    lines = ["name: x", "nodes:", "  n0:", "    labels: &m0 {k: v}"]
    for i in range(1, levels):
        lines += [f"  n{i}:", f"    labels: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: v}}"]
    return "\n".join(lines) + "\n"


def _limited_memory() -> None:
    """In the child: a 1 GiB address space, so a loader that flattens the bomb fails at once instead of eating RAM."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_a_merge_key_bomb_is_a_config_error_at_its_line(tmp_path):
    config = tmp_path / "factory.yaml"
    config.write_text(_doubling(40))
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl", "-c", str(config), "config", "validate"],
        capture_output=True,
        text=True,
        preexec_fn=_limited_memory,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    first = done.stderr.splitlines()[0]
    assert first.startswith(f"factoryctl: {config}:40:19: the merge keys (`<<`) up to `nodes.n18.labels` would copy")
    assert f"more than {MAX_MERGED_PAIRS:,} keys" in first
    assert "hint: merge a few defaults into each entry (`<<: *defaults`)" in done.stderr


def test_merges_below_the_bound_and_many_aliases_of_one_default_still_load():
    assert len(parse_config(_doubling(12), F).nodes["n11"].labels) == 12
    entries = "".join(f"  n{i}: {{<<: *d, host: h{i}}}\n" for i in range(2000))
    config = parse_config(f"nodes:\n  a: &d {{rack: r1, gpus: 8, labels: {{x: y}}}}\n{entries}", F)
    assert (config.nodes["n1999"].rack, config.nodes["n1999"].host, config.nodes["n1999"].gpus) == ("r1", "h1999", 8)


def test_a_mapping_merging_itself_loads_as_pyyaml_reads_it():
    config = parse_config("nodes:\n  a: &a {host: h, labels: {x: y}}\n  b: {<<: [*a, *a], host: b}\n", F)
    assert (config.nodes["b"].host, config.nodes["b"].labels) == ("b", {"x": "y"})


def test_a_group_written_as_a_list_says_how_to_write_it():
    error = _error("nodes: {gpu01: {}, gpu02: {}}\ngroups:\n  g: [gpu01, gpu02]\n")
    assert error.message == "f.yaml:3:6: `groups.g`: a group is one node set written as text, not a YAML list."
    assert error.hint == 'write `g: gpu[01-02]` or `g: "gpu01,gpu02"`.'


def test_nodes_written_as_a_list_says_nodes_is_a_mapping():
    error = _error("nodes:\n  - gpu01\n  - gpu02\n")
    assert "`nodes`: must be a mapping of node names (or node sets) to their settings, not a list." in error.message
    assert "valid dictionary" not in error.message


def test_a_section_indented_under_nodes_is_said_to_be():
    error = _error("nodes:\n  gpu01: {}\n  controller:\n    interval_s: 5\n")
    assert error.message == "f.yaml:4:5: unknown key `nodes.controller.interval_s`."
    assert (
        error.hint == "is `controller:` indented under `nodes:`? a top-level section starts at the line's first column."
    )
    assert _error("nodes:\n  power: {hots: x}\n").hint == "did you mean `host`?"  # a node really named power


def test_a_second_document_says_factory_yaml_holds_one():
    error = _error("nodes: {a: {}}\n---\nnodes: {b: {}}\n")
    assert error.message == "f.yaml:2:1: malformed YAML: a second YAML document starts here."
    assert error.hint == "factory.yaml holds one document: remove the `---` line."


def test_settings_naming_environment_variables_are_warned_of_once_each():
    text = (
        "state_dir: $XDG_STATE_HOME/factoryctl/e\n"
        "ssh:\n  user: ${SSH_USER}\n  identity_file: $HOME/.ssh/key\n"
        "nodes:\n  gpu[01-04]: {python: $PY, labels: {price: $CHEAP}}\n"
    )
    assert parse_config(text, F).warnings == (
        "f.yaml:1:12: `state_dir` holds `$XDG_STATE_HOME`: factory.yaml does not expand environment variables; "
        "write its value.",
        "f.yaml:3:9: `ssh.user` holds `${SSH_USER}`: factory.yaml does not expand environment variables; "
        "write its value.",
        "f.yaml:4:18: `ssh.identity_file` holds `$HOME`: factory.yaml does not expand environment variables; "
        "write its value (a leading `~` is your home directory).",
        "f.yaml:6:24: `nodes.gpu[01-04].python` holds `$PY`: factory.yaml does not expand environment variables; "
        "write its value.",
    )
    assert parse_config("state_dir: ~/st$5\nnodes: {a: {}}\n", F).warnings == ()


def test_a_host_naming_an_environment_variable_says_it_is_not_expanded():
    error = _error('nodes:\n  a: {host: "${A_HOST}"}\n')
    assert error.message == (
        "f.yaml:2:13: `nodes.a.host`: holds `${A_HOST}`: factory.yaml does not expand environment variables; "
        "write the host name or address."
    )
    assert "Match exec" in _error('nodes:\n  a: {host: "a$(x)"}\n').message


def test_real_nodes_sharing_a_host_and_port_are_warned_of_folded():
    text = (
        "nodes:\n  gpu[01-10]: {host: 10.0.0.1}\n  gpu11: {host: 10.0.0.1}\n  gpu12: {host: 10.0.0.1, port: 2222}\n"
        "  s[1-3]: {host: localhost, sim: h100-sxm}\n  l[1-2]: {transport: local}\n  v[1-2]: {host: '::1'}\n"
    )
    assert parse_config(text, F).warnings == (
        "f.yaml: nodes gpu[01-11] (11) all log in to 10.0.0.1:22: one machine counted 11 times; give each node its "
        "own `host` (or `port`) unless that is meant.",
        "f.yaml: nodes v[1-2] (2) all log in to [::1]:22: one machine counted 2 times; give each node its own "
        "`host` (or `port`) unless that is meant.",
    )
    assert parse_config("nodes:\n  gpu[01-10]: {}\n", F).warnings == ()
