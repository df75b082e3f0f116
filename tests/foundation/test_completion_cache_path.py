"""Completion's cache is kept only where the agent zipapp's cache may be: the whole path private, never steered.

The reviewer's attacks: another user made a directory anyone may write with a link `factoryctl -> a directory of
root's`; root's TAB with `$XDG_CACHE_HOME` there wrote its entry into that directory and its clean-up removed an old
`.*.tmp` file of it (only the entry's own directory was looked at). Under `su` (no `SUDO_UID`) keeping the user's
`$XDG_CACHE_HOME`, root's TAB made `~/.cache/factoryctl` root's (0755), so the user's zipapp cache was "not private"
at every command and their completion cache never worked again. Missing directories were made with the umask's mode.
Making files another user's needs root, as in tests/ssh/test_cache_security.py. Every TAB still answers, silently.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")

#: The CLI's entry point, saying on stderr at exit whether the YAML parser was loaded (a full parse of factory.yaml).
PARSE_REPORTING = (
    "import sys\nfrom factoryctl.cli.app import main\ntry:\n    main()\n"
    "finally:\n    print('parsed' if 'yaml' in sys.modules else 'not parsed', file=sys.stderr)\n"
)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  n1: {transport: local}\n  n2: {transport: local}\n")
    return path


def tab(config: Path, cache_home: Path) -> str:
    """bash's TAB at `factoryctl gpus n` with `$XDG_CACHE_HOME` at `cache_home` (no SUDO_UID, as under su, umask
    022); says whether factory.yaml was parsed. It must offer the nodes and print nothing else, whatever the cache."""
    env = {k: v for k, v in os.environ.items() if k != "SUDO_UID"}
    env.update(FACTORYCTL_CONFIG=str(config), XDG_CACHE_HOME=str(cache_home), _FACTORYCTL_COMPLETE="complete_bash")
    env.update(COMP_WORDS="factoryctl gpus n", COMP_CWORD="2")
    argv = [sys.executable, "-c", PARSE_REPORTING]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False, umask=0o022)
    assert (done.returncode, done.stdout.split()) == (0, ["n1", "n2"]), done.stderr
    assert done.stderr.strip() in ("parsed", "not parsed"), done.stderr
    return done.stderr.strip()


def modes(*paths: Path) -> list[int]:
    return [stat.S_IMODE(path.stat().st_mode) for path in paths]


@as_root
def test_a_link_planted_in_a_shared_cache_home_is_not_followed(config: Path, tmp_path: Path) -> None:
    squat, theirs = tmp_path / "squat", tmp_path / "roots-dir" / "completion"
    theirs.mkdir(parents=True, mode=0o700)  # a directory of root's, as root's own cache directory would be
    old = theirs / ".victim-data.tmp"
    old.write_text("root's data")
    forty_days_ago = time.time() - 40 * 86400
    os.utime(old, (forty_days_ago, forty_days_ago))
    squat.mkdir()
    squat.chmod(0o777)
    (squat / "factoryctl").symlink_to(theirs.parent)
    for path in (squat, squat / "factoryctl"):
        os.lchown(path, FOREIGN_UID, FOREIGN_UID)
    assert tab(config, squat) == "parsed"
    assert tab(config, squat) == "parsed"  # nothing was kept
    assert sorted(theirs.iterdir()) == [old]  # nothing written there, and the old file not removed


@as_root
def test_root_makes_nothing_in_a_users_cache_home_under_su(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "home" / ".cache"
    cache.mkdir(parents=True, mode=0o700)
    os.chown(cache.parent, FOREIGN_UID, FOREIGN_UID)
    os.chown(cache, FOREIGN_UID, FOREIGN_UID)
    assert tab(config, cache) == "parsed"
    assert list(cache.iterdir()) == []  # no ~/.cache/factoryctl of root's
    theirs = cache / "factoryctl" / "completion"
    theirs.mkdir(parents=True, mode=0o700)
    for path in (theirs.parent, theirs):
        os.chown(path, FOREIGN_UID, FOREIGN_UID)
    assert tab(config, cache) == "parsed"
    assert list(theirs.iterdir()) == []
    assert [path.stat().st_uid for path in (theirs.parent, theirs)] == [FOREIGN_UID, FOREIGN_UID]


def test_missing_cache_directories_are_made_private(config: Path, tmp_path: Path) -> None:
    cache = tmp_path / "new" / "cache"
    assert tab(config, cache) == "parsed"
    made = [tmp_path / "new", cache, cache / "factoryctl", cache / "factoryctl" / "completion"]
    assert modes(*made) == [0o700] * 4  # not the umask's 0755
    assert tab(config, cache) == "not parsed"


def test_a_directory_above_the_cache_that_others_may_write_is_not_used(config: Path, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    cache = shared / "cache"
    assert tab(config, cache) == "parsed"
    shared.chmod(0o1777)  # sticky, as /tmp: nobody else can move the cache away
    assert tab(config, cache) == "not parsed"
    shared.chmod(0o777)  # anyone could swap the cache for a directory of their own
    (entry,) = (cache / "factoryctl" / "completion").iterdir()
    entry.write_text(entry.read_text().replace('"n2"', '"n9"'))
    assert tab(config, cache) == "parsed"  # offers n1 and n2 (tab checks), not the planted n9
    assert tab(config, cache) == "parsed"  # and nothing is written there


def test_a_cache_home_reached_through_the_users_own_link_is_used(config: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(real)
    assert tab(config, tmp_path / "link") == "parsed"
    assert tab(config, tmp_path / "link") == "not parsed"
    assert len(list((real / "factoryctl" / "completion").iterdir())) == 1
