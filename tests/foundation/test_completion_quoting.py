"""Completion candidates and their descriptions reach the user as written, in a real zsh, fish and bash.

zsh evals what factoryctl prints twice, then `_describe` reads it: Typer's quoting lost an apostrophe ("node's" showed
as "nodes") and a double quote. Typer also ran descriptions through rich's markup renderer, which dropped
`[default: 300]` and wrapped lines past 80 columns (fish took the rest for a candidate). bash expanded candidates
as file patterns, so `gpu[01-03]` became a file of the current directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pty_shell import PtyShell, factoryctl_on_path

#: (value, description) pairs with every character the shells' quoting treats specially.
HARD_CANDIDATES = [
    ("a:b", 'colon value; it\'s "quoted", $HOME and `date` stay, a:b [default: 300] back\\slash \\: ok'),
    ("gpu[01-03]", "brackets value"),
    ("it's", "apostrophe value"),
    ('q"v', "double quote value"),
    ("d$x", "dollar value"),
    ("b\\s", "backslash value"),
]

#: A stand-in `factoryctl` answering every completion request with HARD_CANDIDATES through our zsh and fish classes.
FAKE_PROGRAM = """\
import json, sys
from typer.core import TyperCommand as Command
from typer._click.shell_completion import CompletionItem
from factoryctl.cli.completion import FishCandidates, ZshCandidates
items = [CompletionItem(value, help=text) for value, text in json.loads(sys.argv[1])]
shell = {"complete_zsh": ZshCandidates, "complete_fish": FishCandidates}[__import__("os").environ["_X_COMPLETE"]]
fixed = type("Fixed", (shell,), {"get_completions": lambda self, args, incomplete: items})
print(fixed(Command("factoryctl"), {}, "factoryctl", "_X_COMPLETE").complete())
"""


def fake_factoryctl(bin_dir: Path) -> str:
    """A PATH whose `factoryctl` prints HARD_CANDIDATES in the protocol the calling shell's script asks for."""
    bin_dir.mkdir()
    (bin_dir / "fake.py").write_text(FAKE_PROGRAM)
    wrapper = bin_dir / "factoryctl"
    items = json.dumps(HARD_CANDIDATES).replace("'", "'\\''")
    wrapper.write_text(
        f'#!/bin/sh\n_X_COMPLETE="$_FACTORYCTL_COMPLETE" exec "{sys.executable}" "{bin_dir}/fake.py" \'{items}\'\n'
    )
    wrapper.chmod(0o755)
    return f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"


class Zsh(PtyShell):
    """An interactive `zsh -d -i` with our completion script sourced and a wide terminal for its listings."""

    def __init__(self, zdotdir: Path, path: str) -> None:
        zsh = shutil.which("zsh")
        assert zsh is not None, "these tests drive a real zsh: install it (apt-get install zsh)"
        super().__init__([zsh, "-d", "-i"], {"ZDOTDIR": str(zdotdir), "PATH": path, "TERM": "dumb", "COLUMNS": "220"})

    def tab(self, line: str, wanted: str) -> str:
        """Type `line` and TAB; read until `wanted` shows; return the screen (whitespace runs as one blank)."""
        self.type(line + "\t")
        found = self.read_until(wanted.encode())
        screen = " ".join(self.seen.decode(errors="replace").split())
        assert found, screen
        self.type("\x15")  # Ctrl-U: kill the line
        return screen


@pytest.fixture
def zsh(cli, tmp_path: Path) -> Iterator[object]:
    """Start zsh with `factoryctl completion zsh` sourced and the given PATH."""
    (tmp_path / "factoryctl.zsh").write_text(cli("completion", "zsh").stdout)
    shells: list[Zsh] = []

    def start(path: str) -> Zsh:
        zdotdir = tmp_path / f"zdot{len(shells)}"
        zdotdir.mkdir()
        rc = f"PS1='zsh-ready> '\nautoload -U compinit && compinit -u -D\nsource {tmp_path}/factoryctl.zsh\n"
        (zdotdir / ".zshrc").write_text(rc)
        shell = Zsh(zdotdir, path)
        shells.append(shell)
        assert shell.read_until(b"zsh-ready> "), shell.seen
        return shell

    yield start
    for shell in shells:
        shell.close()


def test_zsh_lists_the_command_descriptions_as_written(zsh, tmp_path):
    shell = zsh(factoryctl_on_path(tmp_path / "bin"))
    assert "each node's SSH host-key fingerprint" in shell.tab("factoryctl nodes ", "zsh-ready> ")
    screen = shell.tab("factoryctl sched simulate --g", "zsh-ready> ")
    assert "keeps its GPUs to checkpoint [default: 300]." in screen  # rich took it for a markup tag


def test_zsh_shows_and_inserts_every_special_character(zsh, tmp_path):
    shell = zsh(fake_factoryctl(tmp_path / "fake"))
    screen = shell.tab("factoryctl ", "zsh-ready> ")
    for value, description in HARD_CANDIDATES:
        assert re.search(re.escape(value) + " -- " + re.escape(description), screen), (value, screen)
    assert "gpu\\[01-03\\]" in shell.tab("factoryctl gp", "gpu\\[01-03\\] ")  # quoted for the line, as zsh does
    assert "it\\'s" in shell.tab("factoryctl it", "it\\'s ")
    assert "a:b" in shell.tab("factoryctl a", "a:b ")


def fish_completions(script: Path, line: str, path: str) -> list[str]:
    """What fish offers for `line` (`complete -C`: a line per candidate, `value<TAB>description`)."""
    fish = shutil.which("fish")
    assert fish is not None, "this test drives a real fish: install it (apt-get install fish)"
    command = f"source {script}; complete -C {json.dumps(line)}"
    done = subprocess.run(
        [fish, "--no-config", "-c", command],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_fish_gets_one_line_per_candidate_as_written(cli, tmp_path):
    script = tmp_path / "factoryctl.fish"
    script.write_text(cli("completion", "fish").stdout)
    path = factoryctl_on_path(tmp_path / "bin")
    offered = fish_completions(script, "factoryctl exec --", path)
    assert all(line.startswith("--") for line in offered), offered  # no wrapped rest of a description
    lines = (
        "--lines\tPrint each line as it arrives, prefixed with its node (like pdsh), instead of gathering at the end."
    )
    assert lines in offered
    grace = fish_completions(script, "factoryctl sched simulate --gr", path)
    assert grace == ["--grace\tWith --preemption: seconds a stopped job keeps its GPUs to checkpoint [default: 300]."]
    offered = fish_completions(script, "factoryctl ", fake_factoryctl(tmp_path / "fake"))
    assert sorted(offered) == sorted(f"{value}\t{text}" for value, text in HARD_CANDIDATES)


def test_bash_does_not_expand_a_candidate_as_a_file_pattern(cli, tmp_path):
    from test_completion_bash import start_bash

    (Path.cwd() / "gpu3").write_text("")  # `gpu[01-03]` as a pattern matches this file
    shell = start_bash(cli, tmp_path, "nodes:\n  gpu[01-03]: {}\n")
    try:
        assert shell.complete("factoryctl gpus gpu[") == "factoryctl gpus gpu[01-03] "
    finally:
        shell.close()


def test_bash_completion_needs_no_mapfile(cli, tmp_path: Path) -> None:
    """bash 3.2 (macOS's /bin/bash) has no `mapfile`: reading candidates with it printed `mapfile: command not
    found` at every Tab and offered file names instead of commands. Here bash 5 runs with the builtin disabled."""
    script = tmp_path / "factoryctl.bash"
    script.write_text(cli("completion", "bash").stdout)
    probe = (
        f"enable -n mapfile; source {script}\n"
        'COMP_LINE="factoryctl no"; COMP_POINT=${#COMP_LINE}; COMP_WORDS=(factoryctl no); COMP_CWORD=1\n'
        '_factoryctl_completion factoryctl; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": factoryctl_on_path(tmp_path / "bin")}
    done = subprocess.run(["bash", "--norc", "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert (done.stdout, done.stderr) == ("nodes\n", "")
