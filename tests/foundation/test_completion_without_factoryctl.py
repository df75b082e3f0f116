"""TAB stays quiet in a shell where `factoryctl` is not on PATH, after `factoryctl --install-completion`.

The rc line `--install-completion` writes runs in every new shell, also one where the virtualenv is not activated (or
after an uninstall). There each TAB after `factoryctl` ran `env ... factoryctl`, whose "No such file or directory"
landed in the middle of the command line (`factoryctl noenv: 'factoryctl': No such file or directory`). These tests
install the completion the way a user does, then press TAB in a real bash, zsh and fish whose PATH has only `env`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pty_shell import PtyShell, factoryctl_on_path

#: Typed after the TABs: its output shows the shell has handled every key before it (the echo shows `$((40+2))`).
SYNC_KEYS, SYNC_SHOWN = "\x15echo SYNC-$((40+2))\r", b"SYNC-42"


def install_completion(shell: str, home: Path) -> None:
    """Run `factoryctl --install-completion` from `shell` (Typer detects the calling shell), into `home`."""
    path = factoryctl_on_path(home.parent / "with-factoryctl")
    env = {**os.environ, "HOME": str(home), "PATH": path, "XDG_CONFIG_HOME": str(home / ".config")}
    command = [shell, "-c", "factoryctl --install-completion; true"]  # `; true`: no exec, so the shell is the parent
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "completion installed" in done.stdout, done.stdout


def path_without_factoryctl(bin_dir: Path) -> str:
    """A PATH holding only `env` (the scripts' one outside command): no `factoryctl` anywhere on it."""
    env = shutil.which("env")
    assert env is not None
    bin_dir.mkdir()
    (bin_dir / "env").symlink_to(env)
    return str(bin_dir)


def screen_after_tabs(argv: list[str], env: dict[str, str], prompt: bytes) -> str:
    """Start the interactive shell `argv`, type `factoryctl no` and TAB twice; return what the terminal showed."""
    shell = PtyShell(argv, {**env, "TERM": "dumb"})
    try:
        assert shell.read_until(prompt), shell.seen
        shell.type("factoryctl no\t\t" + SYNC_KEYS)
        assert shell.read_until(SYNC_SHOWN), shell.seen
        return shell.seen.decode(errors="replace")
    finally:
        shell.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    return home


def test_bash_tab_is_silent_where_factoryctl_is_not_on_path(home: Path, tmp_path: Path) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    install_completion(bash, home)
    with (home / ".bashrc").open("a") as rc:
        rc.write(f"\nPS1='bash-ready> '\ncd {tmp_path}\n")
    env = {"HOME": str(home), "PATH": path_without_factoryctl(tmp_path / "bin")}
    screen = screen_after_tabs([bash, "-i"], env, b"bash-ready> ")
    assert "No such file" not in screen, screen


def test_zsh_tab_is_silent_where_factoryctl_is_not_on_path(home: Path, tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    assert zsh is not None, "this test drives a real zsh: install it (apt-get install zsh)"
    install_completion(zsh, home)
    with (home / ".zshrc").open("a") as rc:
        rc.write("\nPS1='zsh-ready> '\n")
    env = {"HOME": str(home), "ZDOTDIR": str(home), "PATH": path_without_factoryctl(tmp_path / "bin")}
    screen = screen_after_tabs([zsh, "-d", "-i"], env, b"zsh-ready> ")
    assert "No such file" not in screen, screen


def test_fish_completion_is_silent_where_factoryctl_is_not_on_path(home: Path, tmp_path: Path) -> None:
    fish = shutil.which("fish")
    assert fish is not None, "this test drives a real fish: install it (apt-get install fish)"
    install_completion(fish, home)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "PATH": path_without_factoryctl(tmp_path / "bin"),
    }
    # fish autoloads the installed file only for a command it finds, so that one was silent already; sourced from
    # config.fish (`factoryctl completion fish | source`), the script's `env factoryctl` ran at every TAB
    script = home / ".config" / "fish" / "completions" / "factoryctl.fish"
    command = [fish, "-c", f"source {script}; complete -C 'factoryctl no'"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_docs_by_hand_bash_install_works_without_the_bash_completion_package(home: Path, tmp_path: Path) -> None:
    """docs/cli.md sent bash users to /etc/bash_completion.d/, which only the bash-completion package reads."""
    page = " ".join((Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text().split())
    recipe = ("factoryctl completion bash > ~/.factoryctl.bash", "source ~/.factoryctl.bash")
    assert all(f"`{step}`" in page for step in recipe)
    assert "/etc/bash_completion.d/factoryctl` works only where the bash-completion package is installed" in page
    env = {**os.environ, "HOME": str(home), "PATH": factoryctl_on_path(tmp_path / "bin")}
    probe = (  # no rc file of the system: nothing of bash-completion is loaded
        f"{recipe[0]}\n{recipe[1]}\n"
        'COMP_LINE="factoryctl no"; COMP_POINT=${#COMP_LINE}; _factoryctl_completion factoryctl\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", probe], env=env, capture_output=True, text=True, timeout=120
    )
    assert (done.stdout, done.stderr) == ("nodes\n", "")
