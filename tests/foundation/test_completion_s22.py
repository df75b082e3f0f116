"""Completion at a large inventory, fish's one call per TAB, installs where the shell reads, `sim inject`'s nodes.

Each TAB parsed the whole factory.yaml with the pure-Python YAML loader (0.7 s at 2,000 nodes, twice per TAB in
fish). The inventory completion uses is now cached per factory.yaml (cli/completion_cache.py): these tests show a
second TAB does not parse, and that no edit (even one keeping the file's size and mtime) is ever answered from the
cache. fish asks factoryctl once per TAB. `--install-completion` writes where fish (`$XDG_CONFIG_HOME`) and zsh
(`$ZDOTDIR`) read. `sim inject` offers only the simulated nodes it accepts.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from pty_shell import factoryctl_on_path

#: The CLI's entry point, saying on stderr at exit whether the YAML parser was loaded (a full parse of factory.yaml).
PARSE_REPORTING = (
    "import sys\nfrom factoryctl.cli.app import main\ntry:\n    main()\n"
    "finally:\n    print('parsed' if 'yaml' in sys.modules else 'not parsed', file=sys.stderr)\n"
)
INVENTORY = (
    "name: lab\nnodes:\n  gpu[01-03]: {gpus: 4}\n  s[1-2]: {sim: {gpus: 2}}\n  ws: {transport: local}\n"
    "groups:\n  sims: s[1-2]\n  mixed: s1,gpu01\n  most: '@mixed,gpu[02-03]!gpu03'\n"
)


def complete(line: str, config: Path) -> tuple[list[str], str]:
    """bash's candidates for `line` (as our script asks: the whole line, COMP_CWORD -1), and parsed/not parsed."""
    words = f"{line}''" if line.endswith(" ") else line  # as the script sends an empty last word
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "-1"}
    env["FACTORYCTL_CONFIG"] = str(config)
    argv = [sys.executable, "-c", PARSE_REPORTING]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), done.stderr.strip()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(INVENTORY)
    return path


def test_the_second_tab_does_not_parse_and_offers_the_same(config: Path) -> None:
    first, how = complete("factoryctl gpus ", config)
    assert how == "parsed"
    assert first == ["all", "@sims", "@mixed", "@most", "gpu01", "gpu02", "gpu03", "s1", "s2", "ws"]
    again, how = complete("factoryctl gpus ", config)
    assert (again, how) == (first, "not parsed")
    assert complete("factoryctl gpus s1/", config) == (["s1/0", "s1/1"], "not parsed")
    assert complete("factoryctl gpus gpu[", config) == (["gpu[01-03]"], "not parsed")


def test_the_candidates_are_load_configs_names_and_groups(config: Path) -> None:
    from factoryctl.config import load_config

    loaded = load_config(config)
    expected = ["all", *(f"@{group}" for group in loaded.groups), *loaded.nodes]
    for how in ("parsed", "not parsed"):
        assert complete("factoryctl nodes list ", config) == (expected, how)


def test_an_edit_is_seen_at_the_next_tab_even_with_the_same_size_and_mtime(config: Path) -> None:
    assert complete("factoryctl gpus g", config)[0] == ["gpu01", "gpu02", "gpu03"]
    before = config.stat()
    config.write_text(
        INVENTORY.replace("gpu[01-03]", "gpu[04-06]").replace("gpu01", "gpu04").replace("02-03]!gpu03", "05-06]!gpu06")
    )
    os.utime(config, ns=(before.st_atime_ns, before.st_mtime_ns))  # as an edit within one timestamp tick leaves it
    assert config.stat().st_size == before.st_size
    assert complete("factoryctl gpus g", config) == (["gpu04", "gpu05", "gpu06"], "parsed")
    assert complete("factoryctl gpus g", config) == (["gpu04", "gpu05", "gpu06"], "not parsed")


def test_a_file_load_config_refuses_gives_no_names_even_when_cached(config: Path) -> None:
    assert complete("factoryctl gpus w", config) == (["ws"], "parsed")
    config.chmod(0o666)  # anyone may write it now: load_config refuses it
    assert complete("factoryctl gpus w", config)[0] == []
    config.chmod(0o600)
    config.write_text("nodes: [\n")
    assert complete("factoryctl gpus w", config)[0] == []


def test_the_cache_is_private_and_one_not_ours_alone_is_not_read(config: Path, isolated_home: Path) -> None:
    complete("factoryctl gpus ", config)
    entries = list((isolated_home / ".cache" / "factoryctl" / "completion").iterdir())
    assert len(entries) == 1
    assert stat.S_IMODE(entries[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(entries[0].parent.stat().st_mode) == 0o700
    entries[0].write_text(entries[0].read_text().replace('"ws"', '"planted"'))
    entries[0].chmod(0o666)  # someone else could have written it
    offered, how = complete("factoryctl gpus ", config)
    assert ("planted" in offered, "ws" in offered, how) == (False, True, "parsed")


def test_sim_inject_offers_only_what_it_accepts(config: Path) -> None:
    assert complete("factoryctl sim inject ", config)[0] == ["@sims", "s1", "s2"]
    assert complete("factoryctl sim inject s1,", config)[0] == ["s1,@sims", "s1,s2"]
    assert complete("factoryctl sim inject gpu01/", config)[0] == []
    assert complete("factoryctl sim inject s2/", config)[0] == ["s2/0", "s2/1"]
    assert "gpu01" in complete("factoryctl gpus ", config)[0]  # other commands offer every node


def test_sim_inject_offers_all_when_every_node_is_simulated(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("nodes:\n  s[1-2]: {sim: h100-sxm}\n")
    assert complete("factoryctl sim inject ", config)[0] == ["all", "s1", "s2"]


def fish_env(tmp_path: Path) -> dict[str, str]:
    """A fish with its own home, `$XDG_CONFIG_HOME` elsewhere, and a `factoryctl` on PATH that logs each call."""
    bin_dir = tmp_path / "bin"
    path = factoryctl_on_path(bin_dir)
    wrapper = bin_dir / "factoryctl"
    wrapper.write_text(wrapper.read_text().replace("exec ", f'echo call >> "{tmp_path}/calls"\nexec ', 1))
    return {
        **os.environ,
        "PATH": path,
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
        "FACTORYCTL_CONFIG": str(tmp_path / "factory.yaml"),
    }


def test_fish_installs_where_it_reads_and_asks_once_per_tab(config: Path, tmp_path: Path) -> None:
    fish = shutil.which("fish")
    assert fish is not None, "this test drives a real fish: install it (apt-get install fish)"
    env = fish_env(tmp_path)
    command = [fish, "-c", "factoryctl --install-completion; true"]  # `; true`: fish stays the parent
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    installed = tmp_path / "xdg" / "fish" / "completions" / "factoryctl.fish"
    assert done.stdout.splitlines()[0] == f"fish completion installed in {installed}", done.stderr
    assert not (tmp_path / "home" / ".config").exists()
    (tmp_path / "calls").unlink()
    tab = [fish, "-c", "complete -C 'factoryctl gpus gpu0'"]  # autoloaded from $__fish_config_dir/completions
    done = subprocess.run(tab, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.split() == ["gpu01", "gpu02", "gpu03"], done.stderr
    assert (tmp_path / "calls").read_text() == "call\n"  # one factoryctl per TAB (Typer's script: two)


def test_fish_still_offers_files_where_factoryctl_has_no_candidates(config: Path, tmp_path: Path) -> None:
    fish = shutil.which("fish")
    assert fish is not None, "this test drives a real fish: install it (apt-get install fish)"
    env = fish_env(tmp_path)
    script = tmp_path / "factoryctl.fish"
    printed = subprocess.run([*CLI_ARGV, "completion", "fish"], capture_output=True, text=True, timeout=60, check=True)
    script.write_text(printed.stdout)
    (tmp_path / "trace-a.csv").write_text("")
    tab = [
        fish,
        "--no-config",
        "-c",
        f"cd {tmp_path}; source {script}; complete -C 'factoryctl sched simulate --trace trace-'",
    ]
    done = subprocess.run(tab, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.split() == ["trace-a.csv"], done.stderr


def test_zsh_install_writes_the_zshrc_of_zdotdir(tmp_path: Path) -> None:
    zsh = shutil.which("zsh")
    assert zsh is not None, "this test drives a real zsh: install it (apt-get install zsh)"
    home, zdotdir = tmp_path / "home", tmp_path / "zdot"
    env = {**os.environ, "PATH": factoryctl_on_path(tmp_path / "bin"), "HOME": str(home), "ZDOTDIR": str(zdotdir)}
    command = [zsh, "-f", "-c", "factoryctl --install-completion; true"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.stdout.splitlines()[0] == f"zsh completion installed in {home / '.zfunc' / '_factoryctl'}", done.stderr
    assert "fpath+=~/.zfunc; autoload -Uz compinit; compinit" in (zdotdir / ".zshrc").read_text()
    assert not (home / ".zshrc").exists()


def test_a_root_shell_from_sudo_leaves_the_users_cache_alone(
    config: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sudo -s` may keep the user's HOME: root's TAB must not make root's files in the user's cache dir."""
    monkeypatch.setenv("SUDO_UID", "4242")
    assert complete("factoryctl gpus w", config) == (["ws"], "parsed")
    root = os.geteuid() == 0  # only root's SUDO_UID means sudo (private_files.sudo_user)
    assert complete("factoryctl gpus w", config) == (["ws"], "parsed" if root else "not parsed")  # root: none kept
    assert (isolated_home / ".cache" / "factoryctl").exists() is not root


def test_a_fifo_planted_as_the_entry_never_holds_a_tab(config: Path, isolated_home: Path) -> None:
    complete("factoryctl gpus ", config)
    (entry,) = (isolated_home / ".cache" / "factoryctl" / "completion").iterdir()
    entry.unlink()
    os.mkfifo(entry, 0o600)
    offered, how = complete("factoryctl gpus ", config)  # its 60 s timeout would fail the test on a hang
    assert ("ws" in offered, how) == (True, "parsed")


def test_a_cache_directory_others_may_write_is_not_used(config: Path, isolated_home: Path) -> None:
    complete("factoryctl gpus ", config)
    directory = isolated_home / ".cache" / "factoryctl" / "completion"
    (entry,) = directory.iterdir()
    entry.write_text(entry.read_text().replace('"ws"', '"planted"'))
    directory.chmod(0o777)
    offered, how = complete("factoryctl gpus ", config)
    assert ("planted" in offered, "ws" in offered, how) == (False, True, "parsed")
    offered, how = complete("factoryctl gpus ", config)
    assert how == "parsed"  # nothing is written there either


def test_only_old_entries_of_its_own_are_removed(config: Path, isolated_home: Path) -> None:
    directory = isolated_home / ".cache" / "factoryctl" / "completion"
    directory.mkdir(parents=True, mode=0o700)
    stray, old_entry = directory / "notes.txt", directory / ("0" * 32 + ".json")
    for path in (stray, old_entry):
        path.write_text("x")
        os.utime(path, (0, 0))
    complete("factoryctl gpus ", config)
    assert (stray.exists(), old_entry.exists()) == (True, False)
