"""Rough edges of finding and reading factory.yaml, each met by an operator (review 20).

A quoted `~` in -c or $FACTORYCTL_CONFIG was not expanded, and `init` then made a directory named `~`; `init`
silently shadowed the XDG dir's factory.yaml with a new ./factory.yaml; a state_dir that is a file passed `config
validate` and failed later with "there is no store at .../afile/factory.db"; and a few config errors named too
little (the first key of a node given twice) or leaked pydantic's words.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from factoryctl.config import parse_config
from factoryctl.errors import ConfigError

LOCAL = "name: lab\nnodes:\n  ws: {transport: local, sim: h100-sxm}\n"


@pytest.fixture
def elsewhere(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory other than the home, so a `~` left unexpanded would land here."""
    work = isolated_home / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_a_tilde_in_the_config_variable_is_the_home(cli, isolated_home, elsewhere, monkeypatch):
    monkeypatch.setenv("FACTORYCTL_CONFIG", "~/nonexist/factory.yaml")
    wanted = isolated_home / "nonexist" / "factory.yaml"
    located = cli("config", "locate")
    assert located.exit_code == 3
    assert located.stdout == f"{wanted}\n"
    assert f"hint: `factoryctl init {wanted}` writes an example there." in located.stderr
    written = cli("init")
    assert written.exit_code == 0, written.stderr
    assert wanted.is_file()
    assert not (elsewhere / "~").exists()
    assert cli("config", "validate").stdout.startswith(f"{wanted}: ok")


def test_a_quoted_tilde_in_init_and_config_option_is_the_home(cli, isolated_home, elsewhere):
    written = cli("init", "~/nonexist/factory.yaml")
    assert written.exit_code == 0, written.stderr
    wanted = isolated_home / "nonexist" / "factory.yaml"
    assert wanted.is_file()
    assert not (elsewhere / "~").exists()
    assert f"wrote {wanted};" in written.stderr
    assert cli("-c", "~/nonexist/factory.yaml", "config", "validate").stdout.startswith(f"{wanted}: ok")


def test_a_tilde_of_no_user_is_refused_not_made_a_directory(cli, elsewhere):
    refused = cli("init", "~no-such-user-20/factory.yaml")
    assert refused.exit_code == 2
    assert "there is no user `no-such-user-20`" in refused.stderr
    assert list(elsewhere.iterdir()) == []
    assert cli("-c", "~no-such-user-20/factory.yaml", "config", "locate").exit_code == 3


def test_a_new_local_file_that_shadows_the_xdg_one_is_said(cli, isolated_home, elsewhere):
    xdg = isolated_home / ".config" / "factoryctl" / "factory.yaml"
    assert cli("--config", str(xdg), "init").exit_code == 0
    written = cli("-q", "init")  # a warning: -q keeps it
    assert written.exit_code == 0, written.stderr
    assert (elsewhere / "factory.yaml").is_file()
    assert written.stderr == (
        f"warning: factory.yaml now shadows {xdg}: every command run in this directory uses the new file. "
        f"To keep using the other, pass `-c {xdg}` or run factoryctl from another directory.\n"
    )


def test_no_shadow_warning_without_an_xdg_file(cli, elsewhere):
    written = cli("init")
    assert written.exit_code == 0
    assert "shadows" not in written.stderr


@pytest.mark.parametrize("state_dir", ["afile", "afile/sub"])
def test_a_state_dir_that_is_a_file_is_a_config_error(cli, elsewhere, state_dir):
    (elsewhere / "afile").write_text("")
    (elsewhere / "f.yaml").write_text(f"state_dir: ./{state_dir}\n" + LOCAL)
    for command in (("config", "validate"), ("nodes", "list")):
        result = cli("-c", "f.yaml", *command)
        assert result.exit_code == 3, result.stderr
        assert result.stderr.startswith(f"factoryctl: f.yaml:1:12: state_dir {elsewhere / state_dir} "), result.stderr
        assert f"{elsewhere / 'afile'} is a file, not a directory." in result.stderr
        assert "no store" not in result.stderr


def test_a_default_state_dir_that_is_a_file_is_a_config_error(cli, isolated_home, elsewhere):
    state = isolated_home / ".local" / "state" / "factoryctl" / "lab"
    state.parent.mkdir(parents=True)
    state.write_text("")
    (elsewhere / "f.yaml").write_text(LOCAL)
    result = cli("-c", "f.yaml", "config", "validate")
    assert result.exit_code == 3
    assert f"the default state directory {state} is a file, not a directory." in result.stderr


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        (
            "nodes:\n  gpu[01-05]: {}\n  gpu[05-08]: {}\n",
            "f.yaml:3:3: node `gpu05` is defined twice: here by `gpu[05-08]`, on line 2 by `gpu[01-05]`.",
            "one key",
        ),
        (
            "nodes:\n  gpu01: 10.0.0.1\n",
            "f.yaml:2:10: `nodes.gpu01`: a node entry must be a mapping (e.g. `{host: 10.0.0.1}`).",
            "`gpu01: {host: ...}`",
        ),
        ("nodes:\n\tgpu01: {}\n", "f.yaml:2:1: malformed YAML: found character", "not tabs"),
        ('nodes:\n  "": {}\n', 'f.yaml:2:3: `nodes.""` names no node.', "gpu[01-16]"),
        (
            'nodes:\n  "gpu[01-04]!gpu[01-04]": {rack: a}\n',
            "f.yaml:2:3: `nodes.gpu[01-04]!gpu[01-04]` names no",
            "gpu01",
        ),
    ],
)
def test_config_errors_say_enough(text, message, hint):
    with pytest.raises(ConfigError) as caught:
        parse_config(text, Path("f.yaml"))
    assert caught.value.message.startswith(message), caught.value.message
    assert hint in (caught.value.hint or "")
    assert "Input should be" not in caught.value.message
