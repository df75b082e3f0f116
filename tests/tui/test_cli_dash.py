"""`factoryctl dash`: its options, TARGET checked before the screen changes, and Textual loaded only when it opens."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FACTORY = """\
name: lab
nodes:
  gpu[01-04]: {transport: local, rack: a, sim: {profile: h100-sxm, gpus: 2}}
groups:
  rack-a: gpu[01-04]
"""


def test_help_names_target_and_read_only(cli) -> None:
    result = cli("dash", "--help")
    assert result.exit_code == 0
    assert "TARGET" in result.stdout
    assert "--read-only" in result.stdout


def test_a_target_matching_nothing_is_a_usage_error(cli, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), "dash", "gpu[07-09]")
    assert result.exit_code == 2
    assert "matches no node" in result.stderr
    result = cli("--config", str(config), "dash", "@rack-z")
    assert result.exit_code == 2
    assert "unknown group" in result.stderr


def test_without_a_terminal_it_is_a_usage_error(cli, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), "dash")
    assert result.exit_code == 2
    assert "needs a terminal" in result.stderr
    assert "\x1b[" not in result.stdout


def test_without_a_config_it_says_how_to_get_one(cli) -> None:
    result = cli("dash")
    assert result.exit_code == 3
    assert "factoryctl init" in result.stderr


def test_the_cli_does_not_import_textual_until_the_dashboard_opens() -> None:
    code = "import sys, factoryctl.cli.app; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_headless_services_do_not_import_textual() -> None:
    code = (
        "import sys; import factoryctl.tui.services_auto, factoryctl.tui.services_polled, factoryctl.tui.services_store,"
        " factoryctl.tui.view, factoryctl.tui.grid;"
        " print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
