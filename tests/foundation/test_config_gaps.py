"""factory.yaml gaps found in review: group order and cycles, infinite numbers, YAML 1.1 keys, silent coercions,
`config locate` of a directory and `config validate` of a file without nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError, ExitCode


def _error(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("f.yaml"))
    assert caught.value.exit_code == ExitCode.CONFIG
    return caught.value


def test_a_group_may_name_a_group_defined_after_it():
    config = parse_config('nodes: {a: {}, b: {}}\ngroups: {g1: "@g2,b", g2: a}\n', Path("f.yaml"))
    assert config.groups == {"g1": ("a", "b"), "g2": ("a",)}


@pytest.mark.parametrize(
    ("groups", "position", "fragment"),
    [
        ('  g1: "@g1,a"\n', "f.yaml:4:7", "`groups.g1` names itself (`@g1`)"),
        ('  g1: "@g2"\n  g2: "@g1"\n', "f.yaml:4:7", "groups @g1 -> @g2 -> @g1 name each other in a cycle"),
        (
            '  g0: "@g2"\n  g1: "@g3"\n  g2: "@g1"\n  g3: "@g2,a"\n',
            "f.yaml:5:7",
            "groups @g1 -> @g3 -> @g2 -> @g1 name each other in a cycle",
        ),
    ],
)
def test_a_group_cycle_is_named_at_its_first_member(groups, position, fragment):
    error = _error(f"nodes:\n  a: {{}}\ngroups:\n{groups}")
    assert error.message.startswith(position + ":"), error.message
    assert fragment in error.message
    assert "unknown group" not in error.message


def test_an_unknown_group_hint_lists_the_groups_that_exist():
    error = _error('nodes: {a: {}}\ngroups:\n  g0: "@zzzzzz"\n  g1: a\n')
    assert error.message.startswith("f.yaml:3:7: `groups.g0`: unknown group `@zzzzzz`")
    assert error.hint == "groups in factory.yaml: @g0, @g1."


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("ssh:\n  connect_timeout_s: .inf\n", "f.yaml:2:22", "between 0.1 and 86400, not inf"),
        ("ssh: {connect_timeout_s: 1e9}\n", "f.yaml:1:26", "between 0.1 and 86400, not 1000000000"),  # YAML 1.1: text
        ("ssh: {connect_timeout_s: 1.0e+9}\n", "f.yaml:1:26", "between 0.1 and 86400, not 1000000000"),
        ("ssh: {connect_timeout_s: 'ten'}\n", "f.yaml:1:26", "not the text 'ten'"),
        ("controller: {interval_s: .nan}\n", "f.yaml:1:26", "between 0.05 and 3600, not nan"),
        ("controller: {slow_interval_s: -.inf}\n", "f.yaml:1:31", "between 0.05 and 3600, not -inf"),
        ("controller: {reconnect_max_s: .inf}\n", "f.yaml:1:31", "between 0.1 and 86400, not inf"),
        ("controller: {reconnect_max_s: true}\n", "f.yaml:1:31", "not True"),
    ],
)
def test_seconds_must_be_finite_and_at_most_a_day(text, position, fragment):
    error = _error(text)
    assert error.message.startswith(position + ":"), error.message
    assert "must be a finite number of seconds" in error.message
    assert fragment in error.message


def test_a_number_yaml_reads_as_text_is_still_a_number():
    """YAML 1.1 reads `1e3` (no dot) as text, and a quoted "30" is text: both are numbers to a person."""
    config = parse_config(
        "ssh: {connect_timeout_s: '30'}\npower: {facility_budget_kw: 1e3}\nnodes: {a: {}}\n", Path("f.yaml")
    )
    assert config.settings.ssh.connect_timeout_s == 30.0
    assert config.settings.power.facility_budget_kw == 1000.0


@pytest.mark.parametrize("value", [".inf", ".nan", "0", "1.0e12"])
def test_the_facility_budget_must_be_a_finite_number_of_kw(value):
    error = _error(f"power: {{facility_budget_kw: {value}}}\n")
    assert error.message.startswith("f.yaml:1:29: `power.facility_budget_kw`: must be a finite number of kW between")


def test_sane_numbers_still_pass():
    text = "ssh: {connect_timeout_s: 86400}\ncontroller: {interval_s: 0.05, reconnect_max_s: 5}\n"
    config = parse_config(text + "power: {facility_budget_kw: 1500}\nnodes: {a: {port: 2222}}\n", Path("f.yaml"))
    assert config.settings.ssh.connect_timeout_s == 86400.0
    assert config.settings.power.facility_budget_kw == 1500.0
    assert config.nodes["a"].port == 2222


@pytest.mark.parametrize(
    ("text", "position", "key"),
    [
        ("nodes:\n  no: {}\n", "f.yaml:2:3", "`no` under `nodes` is read by YAML as a boolean"),
        ("nodes:\n  123: {}\n", "f.yaml:2:3", "`123` under `nodes` is read by YAML as a number"),
        (
            "nodes:\n  a: {labels: {1.5: x}}\n",
            "f.yaml:2:16",
            "`1.5` under `nodes.a.labels` is read by YAML as a number",
        ),
        ("yes: 1\n", "f.yaml:1:1", "`yes` is read by YAML as a boolean"),
    ],
)
def test_a_key_yaml_reads_as_another_type_is_named_as_written(text, position, key):
    error = _error(text)
    assert error.message.startswith(position + ":"), error.message
    assert key in error.message
    assert "[key]" not in error.message
    written = key.split("`")[1]
    assert error.hint == f'quote it: write `"{written}":` instead of `{written}:`.'


def test_a_quoted_key_is_a_name():
    assert list(parse_config('nodes:\n  "no": {}\n', Path("f.yaml")).nodes) == ["no"]


@pytest.mark.parametrize(
    ("text", "position", "fragment"),
    [
        ("nodes: {a: {port: true}}\n", "f.yaml:1:19", "`nodes.a.port`: must be a whole number from 1 to 65535"),
        ("nodes: {a: {port: 22.0}}\n", "f.yaml:1:19", "`nodes.a.port`: must be a whole number"),
        ("nodes: {a: {port: 65536}}\n", "f.yaml:1:19", "`nodes.a.port`: must be a whole number"),
        (
            "ssh: {port: '22'}\n",
            "f.yaml:1:13",
            "`ssh.port`: must be a whole number from 1 to 65535 (e.g. 22), not '22'",
        ),
        ("nodes: {a: {host: ''}}\n", "f.yaml:1:19", "`nodes.a.host`: must not be empty"),
        ("nodes: {a: {user: ''}}\n", "f.yaml:1:19", "`nodes.a.user`: must not be empty"),
        ("ssh: {user: ' '}\n", "f.yaml:1:13", "`ssh.user`: must not be empty"),
        ("nodes: {a: {gpus: true}}\n", "f.yaml:1:19", "`nodes.a.gpus`"),
    ],
)
def test_no_silent_coercion_of_ports_booleans_or_empty_names(text, position, fragment):
    error = _error(text)
    assert error.message.startswith(position + ":"), error.message
    assert fragment in error.message


def test_config_locate_of_a_directory_exits_3(cli, tmp_path):
    result = cli("--config", str(tmp_path), "config", "locate")
    assert result.exit_code == 3
    assert f"{tmp_path} (from --config) is a directory, not a factory.yaml." in result.stderr
    assert "(exists)" not in result.stderr


@pytest.mark.parametrize("text", ["", "null\n", "# only a comment\n", "nodes:\n"])
def test_config_validate_warns_when_no_node_is_defined(cli, tmp_path, text):
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    result = cli("--config", str(path), "config", "validate")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"{path}: ok, 0 nodes, 0 groups\n"
    assert "defines no nodes: add some under `nodes:` (see `factoryctl init`)" in result.stderr


def test_config_validate_of_a_file_with_nodes_warns_of_nothing(cli, tmp_path):
    path = tmp_path / "factory.yaml"
    path.write_text("nodes: {a: {}}\n")
    result = cli("--config", str(path), "config", "validate")
    assert (result.exit_code, result.stderr) == (0, "")


def test_a_long_chain_of_groups_written_first_to_last_resolves():
    """Resolving on demand recursed once per link: 3,000 groups each naming the next ended in a RecursionError."""
    links = "".join(f"  g{i}: '@g{i + 1}'\n" for i in range(2999))
    config = parse_config(f"nodes: {{a: {{}}}}\ngroups:\n{links}  g2999: a\n", Path("f.yaml"))
    assert config.groups["g0"] == ("a",)
    assert len(config.groups) == 3000


def test_a_merge_key_is_not_a_repeated_key_now_that_the_file_is_parsed_once():
    """Constructing the data flattens `<<` into the composed nodes; the key checks must run on them before that."""
    text = "x-d: &d {rack: a, gpus: 8}\nnodes:\n  a: {<<: *d}\n  b: {<<: *d, rack: b}\n"
    with pytest.raises(ConfigError, match="unknown key `x-d`"):
        parse_config(text, Path("f.yaml"))
    config = parse_config("nodes:\n  a: &d {rack: a, gpus: 8}\n  b: {<<: *d, rack: b}\n", Path("f.yaml"))
    assert (config.nodes["b"].rack, config.nodes["b"].gpus) == ("b", 8)


def test_a_nul_in_factory_yaml_is_malformed_yaml():
    error = _error("nodes: {a: {}}\nx: \x00\n")
    assert "malformed YAML" in error.message


@pytest.mark.parametrize(
    ("text", "position", "key"),
    [
        ("controller: {raw_retention: 99999999999999d}\n", "f.yaml:1:29", "controller.raw_retention"),
        ("scheduler: {default_walltime: 3651d}\n", "f.yaml:1:31", "scheduler.default_walltime"),
    ],
)
def test_a_duration_is_at_most_ten_years(text, position, key):
    error = _error(text)
    assert error.message.startswith(f"{position}: `{key}`: "), error.message
    assert "is longer than 3650d (10 years)" in error.message
    assert parse_config("scheduler: {default_walltime: 3650d}\n", Path("f.yaml")).default_walltime_s() == 3650 * 86400
