"""zsh completion installed as the docs say, driven through a real interactive zsh on a pseudo-terminal.

Installed in `$fpath`, compinit autoloads the script on the first TAB of a shell; Typer's script only registered
itself then, so that first TAB completed nothing. Here the first TAB of a fresh shell must complete, and the next one
too, and `source <(factoryctl completion zsh)` must keep working.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_shell import PtyShell, factoryctl_on_path


class Zsh(PtyShell):
    """An interactive `zsh -d -i` (no system rc files) on a pty, with our ZDOTDIR and PATH."""

    def __init__(self, zdotdir: Path, path: str) -> None:
        zsh = shutil.which("zsh")
        assert zsh is not None, "these tests drive a real zsh: install it (apt-get install zsh)"
        super().__init__([zsh, "-d", "-i"], {"ZDOTDIR": str(zdotdir), "PATH": path, "TERM": "dumb"})

    def tab(self, line: str, wanted: str) -> bool:
        """Type `line`, press TAB: did the line become `wanted`? Then clear the line for the next one."""
        self.type(line + "\t")
        completed = self.read_until(wanted.encode())
        self.type("\x15")  # Ctrl-U: kill the line
        return completed


@pytest.fixture
def zsh_with(tmp_path: Path) -> Iterator[object]:
    """Start zsh with a .zshrc made of the given lines, `factoryctl` on PATH running this checkout."""
    shells: list[Zsh] = []
    path = factoryctl_on_path(tmp_path / "bin")

    def start(*rc_lines: str) -> Zsh:
        zdotdir = tmp_path / "zdot"
        zdotdir.mkdir(exist_ok=True)
        (zdotdir / ".zshrc").write_text("PS1='zsh-ready> '\n" + "\n".join(rc_lines) + "\n")
        shell = Zsh(zdotdir, path)
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
