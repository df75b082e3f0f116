"""`--install-completion` and `--show-completion` from a shell without a script: our sentence, hint and exit 2.

Run from sh (`SHELL=/bin/bash sh -c 'factoryctl --install-completion'`), Typer said a bare `Shell sh is not
supported.` and exited 1, where `factoryctl completion sh` says which shells have a script, with a hint, exit 2.
The shell is the one factoryctl runs from (Typer asks shellingham, which reads the parent processes), so each case
runs the CLI in a real process under a real shell that stays its parent (`; exit $?` keeps it from exec'ing).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cli_process import CLI_ARGV

SENTENCE = "factoryctl: there is no completion script for `sh`.\n"
HINT = "hint: choose bash, zsh or fish: run the command from one of them, or print a script with `factoryctl completion bash`.\n"


def _from_shell(shell: str, option: str, home: Path) -> subprocess.CompletedProcess[str]:
    """`factoryctl OPTION` run by `shell -c`, which stays its parent process, with SHELL=/bin/bash and HOME `home`."""
    env = {**os.environ, "HOME": str(home), "SHELL": "/bin/bash"}
    env.pop("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", None)
    argv = [shell, "-c", '"$@"; exit $?', shell, *CLI_ARGV, option]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("option", ["--install-completion", "--show-completion"])
def test_from_sh_it_is_our_usage_error_and_nothing_is_written(option: str, tmp_path: Path) -> None:
    if shutil.which("sh") is None:
        pytest.skip("no sh here")
    done = _from_shell("sh", option, tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", SENTENCE + HINT)
    assert list(tmp_path.iterdir()) == []  # no ~/.bashrc line, no script


def test_the_completion_command_says_the_same_sentence(tmp_path: Path) -> None:
    done = subprocess.run([*CLI_ARGV, "completion", "sh"], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(SENTENCE)


def test_from_bash_it_installs_as_before(tmp_path: Path) -> None:
    done = _from_shell("bash", "--install-completion", tmp_path)
    assert done.returncode == 0, done.stderr
    script = tmp_path / ".bash_completions" / "factoryctl.sh"
    assert "complete -o default -F _factoryctl_completion factoryctl" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()
