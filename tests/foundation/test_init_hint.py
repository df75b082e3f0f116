"""`factoryctl init` suggests the shortest `config validate` that finds the file it wrote."""

from __future__ import annotations

from pathlib import Path

import pytest


def _suggested(stderr: str) -> str:
    return stderr.split("check it with `", 1)[1].split("`", 1)[0]


def test_a_file_found_by_itself_needs_no_config_option(cli, isolated_home: Path):
    result = cli("init")
    assert result.exit_code == 0, result.stderr
    assert _suggested(result.stderr) == "factoryctl config validate"
    assert cli("config", "validate").exit_code == 0


def test_the_xdg_config_file_needs_no_config_option(cli, isolated_home: Path):
    xdg = isolated_home / ".config" / "factoryctl" / "factory.yaml"
    result = cli("--config", str(xdg), "init")
    assert result.exit_code == 0, result.stderr
    assert _suggested(result.stderr) == "factoryctl config validate"
    assert cli("config", "validate").stdout.startswith(f"{xdg}: ok")


def test_a_file_elsewhere_is_named(cli, isolated_home: Path):
    result = cli("init", "my lab.yaml")
    assert _suggested(result.stderr) == "factoryctl --config 'my lab.yaml' config validate"


def test_a_config_variable_naming_another_file_keeps_the_option(
    cli, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("FACTORYCTL_CONFIG", str(isolated_home / "elsewhere.yaml"))
    result = cli("init", "factory.yaml")
    assert _suggested(result.stderr) == "factoryctl --config factory.yaml config validate"


def test_init_writes_the_file_the_config_variable_names(cli, isolated_home: Path, monkeypatch: pytest.MonkeyPatch):
    elsewhere = isolated_home / "elsewhere.yaml"
    monkeypatch.setenv("FACTORYCTL_CONFIG", str(elsewhere))
    result = cli("init")
    assert result.exit_code == 0, result.stderr
    assert elsewhere.is_file()
    assert _suggested(result.stderr) == "factoryctl config validate"
    assert cli("config", "validate").stdout.startswith(f"{elsewhere}: ok")
