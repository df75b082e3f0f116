"""A current directory deleted under the shell is not a crash: discovery goes on past it, a relative path says why.

`rm -rf` of the directory a shell stands in leaves the shell there; every command then crashed with `unexpected
error: FileNotFoundError` and the hint to report it (Path.cwd() in config discovery, abspath of a relative
`--config`). Each command runs here in a real process whose current directory is removed before it starts.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from cli_process import CLI_ARGV

#: `sh -c` that enters $1, removes it, and runs the rest of its arguments there.
IN_A_REMOVED_DIR = 'cd "$1" && rmdir "$1" && shift && exec "$@"'


def run_in_removed_dir(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    gone = tmp_path / "gone"
    gone.mkdir()
    env = {key: value for key, value in os.environ.items() if key != "FACTORYCTL_CONFIG"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    return subprocess.run(
        ["sh", "-c", IN_A_REMOVED_DIR, "sh", str(gone), *CLI_ARGV, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def xdg_config(tmp_path: Path) -> Path:
    path = tmp_path / "xdg" / "factoryctl" / "factory.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(f"state_dir: {tmp_path / 'state'}\nnodes: {{ws: {{transport: local}}}}\n")
    path.chmod(0o600)
    return path


def test_config_locate_goes_on_to_the_xdg_config_dir(tmp_path: Path) -> None:
    found = xdg_config(tmp_path)
    result = run_in_removed_dir(tmp_path, "config", "locate")
    assert "unexpected error" not in result.stderr
    assert (result.returncode, result.stdout) == (0, f"{found}\n"), result.stderr


def test_a_relative_config_path_says_the_current_directory_is_gone(tmp_path: Path) -> None:
    result = run_in_removed_dir(tmp_path, "-c", "../f.yaml", "nodes")
    assert result.returncode == 3, result.stderr
    assert result.stderr == (
        "factoryctl: --config ../f.yaml is relative to the current directory, which no longer exists (deleted?).\n"
        "hint: cd to a directory that exists (`cd ~`), or give the path in full (from /).\n"
    )


def test_init_says_the_current_directory_is_gone_and_writes_nothing(tmp_path: Path) -> None:
    result = run_in_removed_dir(tmp_path, "init")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(
        "factoryctl: the file factory.yaml is relative to the current directory, which no longer exists (deleted?);"
        " nothing was written.\n"
    )
    assert not (tmp_path / "xdg").exists()


def test_an_absolute_path_still_works_there(tmp_path: Path) -> None:
    target = tmp_path / "new" / "factory.yaml"
    result = run_in_removed_dir(tmp_path, "init", str(target))
    assert result.returncode == 0, result.stderr
    assert target.is_file()
