"""zsh completion installed as the docs say, driven through a real interactive zsh on a pseudo-terminal.

Installed in `$fpath`, compinit autoloads the script on the first TAB of a shell; Typer's script only registered
itself then, so that first TAB completed nothing. Here the first TAB of a fresh shell must complete, and the next one
too, and `source <(factoryctl completion zsh)` must keep working.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Longest wait for zsh to echo a completion (a loaded machine starts Python slowly); a bound, not an assertion.
ECHO_TIMEOUT_S = 90.0


class Zsh:
    """An interactive `zsh -d -i` (no system rc files) on a pty, with our ZDOTDIR and PATH."""

    def __init__(self, zdotdir: Path, path: str) -> None:
        zsh = shutil.which("zsh")
        assert zsh is not None, "these tests drive a real zsh: install it (apt-get install zsh)"
        self.master, slave = os.openpty()
        env = {**os.environ, "ZDOTDIR": str(zdotdir), "PATH": path, "TERM": "dumb"}
        self.process = subprocess.Popen(
            [zsh, "-d", "-i"], stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, wanted: bytes) -> bool:
        """Read the terminal until `wanted` shows (True), or ECHO_TIMEOUT_S pass (False)."""
        deadline = time.monotonic() + ECHO_TIMEOUT_S
        while wanted not in self.seen and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        return wanted in self.seen

    def tab(self, line: str, wanted: str) -> bool:
        """Type `line`, press TAB: did the line become `wanted`? Then clear the line for the next one."""
        self.seen = b""
        os.write(self.master, line.encode() + b"\t")
        completed = self.read_until(wanted.encode())
        self.seen = b""
        os.write(self.master, b"\x15")  # Ctrl-U: kill the line
        return completed

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)
        os.close(self.master)


@pytest.fixture
def zsh_with(tmp_path: Path) -> Iterator[object]:
    """Start zsh with a .zshrc made of the given lines, `factoryctl` on PATH running this checkout."""
    shells: list[Zsh] = []
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "factoryctl"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m factoryctl "$@"\n')
    wrapper.chmod(0o755)

    def start(*rc_lines: str) -> Zsh:
        zdotdir = tmp_path / "zdot"
        zdotdir.mkdir(exist_ok=True)
        (zdotdir / ".zshrc").write_text("PS1='zsh-ready> '\n" + "\n".join(rc_lines) + "\n")
        shell = Zsh(zdotdir, f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        shells.append(shell)
        assert shell.read_until(b"zsh-ready> "), shell.seen
        return shell

    yield start
    for shell in shells:
        shell.close()


def test_the_script_completes_when_autoloaded_and_registers_when_sourced(cli):
    script = cli("completion", "zsh").stdout
    lines = script.splitlines()
    assert lines[0] == "#compdef factoryctl"  # compinit binds the fpath file to factoryctl by this line
    autoloaded = script.index("if [[ $zsh_eval_context[-1] == loadautofunc ]]; then")
    assert '_factoryctl_completion "$@"' in script[autoloaded:]  # the TAB that loaded it is answered
    assert "compdef _factoryctl_completion factoryctl" in script  # sourced: registered for later TABs


def test_install_completion_writes_the_same_zsh_script(cli):
    from typer._completion_shared import get_completion_script

    installed = get_completion_script(prog_name="factoryctl", complete_var="_FACTORYCTL_COMPLETE", shell="zsh")
    assert installed.strip() == cli("completion", "zsh").stdout.strip()


def test_first_tab_of_a_new_shell_completes_from_fpath(cli, zsh_with, tmp_path):
    functions = tmp_path / "zfunc"
    functions.mkdir()
    (functions / "_factoryctl").write_text(cli("completion", "zsh").stdout)  # completion zsh > "${fpath[1]}/..."
    shell = zsh_with(f"fpath=({functions} $fpath)", "autoload -U compinit && compinit -u -D")
    assert shell.tab("factoryctl config va", "factoryctl config validate")  # the TAB that autoloads the script
    assert shell.tab("factoryctl config lo", "factoryctl config locate")
    assert shell.tab("factoryctl sim i", "factoryctl sim inject")


def test_sourced_script_completes(zsh_with):
    shell = zsh_with("autoload -U compinit && compinit -u -D", "source <(factoryctl completion zsh)")
    assert shell.tab("factoryctl config va", "factoryctl config validate")
    assert shell.tab("factoryctl config lo", "factoryctl config locate")
