"""`-c/--config` and `init`'s PATH are read as typed, as every file option is (docs/cli.md).

pathlib read an empty value as `.` and `./-` as `-`: `-c ''` looked for factory.yaml in "the directory `.`",
`init ''` said ". is a directory", `init ./-` printed the example on stdout instead of writing the file `-`, and a
missing `-c ./-` hinted `factoryctl init -`, which prints. Now an empty value is a usage error naming the option,
only `init -` itself is stdout, and a file named `-` is named by its absolute path wherever it is shown.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"


@pytest.mark.parametrize("args", [("-c", ""), ("--config=",)])
@pytest.mark.parametrize("command", [("config", "locate"), ("config", "validate"), ("init",)])
def test_an_empty_config_is_a_usage_error_naming_it(
    cli: Any, isolated_home: Path, args: tuple[str, ...], command: tuple[str, ...]
) -> None:
    result = cli(*args, *command)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "factoryctl: --config is empty, and it needs a file name.",
        "hint: give --config a file name.",
    ]
    assert list(isolated_home.iterdir()) == []  # `init` wrote nothing


def test_an_empty_init_path_is_a_usage_error(cli: Any, isolated_home: Path) -> None:
    result = cli("init", "")
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "factoryctl: PATH is empty, and it needs a file name.",
        "hint: give PATH a file name, or - for stdout.",
    ]
    assert list(isolated_home.iterdir()) == []


def test_init_dash_prints_and_init_dot_slash_dash_writes_the_file(cli: Any, isolated_home: Path) -> None:
    printed = cli("init", "-")
    assert printed.exit_code == 0
    assert printed.stdout.startswith("# factory.yaml")
    assert list(isolated_home.iterdir()) == []
    written = cli("init", "./-")
    assert (written.exit_code, written.stdout) == (0, "")
    assert (isolated_home / "-").read_text() == printed.stdout
    assert written.stderr.startswith(f"wrote {isolated_home / '-'}; check it with")
    again = cli("init", "./-")
    assert again.exit_code == 2
    assert again.stderr.startswith(f"factoryctl: {isolated_home / '-'} already exists")


@pytest.mark.parametrize("given", ["-", "./-"])
def test_a_config_named_dash_is_that_file_and_its_hint_writes_it(cli: Any, isolated_home: Path, given: str) -> None:
    missing = cli("-c", given, "config", "locate")
    named = isolated_home / "-"
    assert (missing.exit_code, missing.stdout) == (3, f"{named}\n")  # `cat "$(... config locate)"` reads no stdin
    assert missing.stderr == (
        f"factoryctl: {named} (from --config) does not exist.\nhint: `factoryctl init {named}` writes an example there.\n"
    )
    written = cli("-c", given, "init")  # the --config file, not stdout
    assert (written.exit_code, written.stdout) == (0, "")
    assert named.read_text().startswith("# factory.yaml")
    named.write_text(FACTORY)
    valid = cli("-c", given, "config", "validate")
    assert (valid.exit_code, valid.stdout) == (0, f"{named}: ok, 1 node, 0 groups\n")


def test_factoryctl_config_dash_is_that_file_and_empty_is_unset(
    cli: Any, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FACTORYCTL_CONFIG", "./-")
    result = cli("config", "locate")
    named = isolated_home / "-"
    assert (result.exit_code, result.stdout) == (3, f"{named}\n")
    assert f"`factoryctl init {named}` writes" in result.stderr
    monkeypatch.setenv("FACTORYCTL_CONFIG", "")
    (isolated_home / "factory.yaml").write_text(FACTORY)
    found = cli("config", "locate")
    assert (found.exit_code, found.stdout) == (0, f"{Path.cwd() / 'factory.yaml'}\n")
    assert found.stderr == "from current directory (exists)\n"


def test_a_config_from_a_pipe_still_loads(isolated_home: Path) -> None:
    """`--config <(sops -d factory.yaml)`: a /dev/fd path, read as it is."""
    (isolated_home / "factory.yaml").write_text(FACTORY)
    script = 'exec "$0" -m factoryctl --config <(cat factory.yaml) config validate'
    done = subprocess.run(
        ["bash", "-c", script, sys.executable], capture_output=True, text=True, cwd=isolated_home, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("/dev/fd/")
    assert done.stdout.endswith(": ok, 1 node, 0 groups\n")
