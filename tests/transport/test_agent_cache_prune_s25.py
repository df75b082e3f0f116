"""Old agent zipapps are removed from this user's cache when a new one is built there (transport/bundle_prune.py).

The reviewer's case: one ~130 KB `factoryctl-agent-<hash>.pyz` per agent change piled up in ~/.cache/factoryctl for
good. Now a new build removes this user's other zipapps last written more than 7 days ago; a younger one, a link,
another name, or anything when no new zipapp was built, stays; a process whose file went rebuilds it at its next use.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from factoryctl.transport import bundle
from factoryctl.transport.bundle_prune import PRUNE_AFTER_S

OLD = "factoryctl-agent-0123456789abcdef.pyz"
YOUNG = "factoryctl-agent-fedcba9876543210.pyz"
OLD_TEMP = "factoryctl-agent-00000000000000aa.pyz.k3j_x9z1.tmp"
OTHER = "notes-factoryctl-agent-0123456789abcdef.pyz"


@pytest.fixture(autouse=True)
def fresh_bundle_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fallback directory, cache verdict or checked zipapp left over from another test of this process."""
    monkeypatch.setattr(bundle, "_FALLBACK", [])
    monkeypatch.setattr(bundle, "_UNWRITABLE", {})
    monkeypatch.setattr(bundle, "_VERIFIED", {})


def aged(path: Path, days: float) -> Path:
    """`path` created (if missing) and last written `days` ago."""
    if not path.is_symlink():
        path.write_bytes(b"old agent")
    then = time.time() - days * 86400
    os.utime(path, (then, then), follow_symlinks=False)
    return path


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    directory.mkdir(mode=0o700)
    return directory


def test_a_new_build_removes_the_zipapps_older_than_a_week(cache: Path) -> None:
    for name in (OLD, OLD_TEMP, OTHER):
        aged(cache / name, PRUNE_AFTER_S / 86400 + 1)
    aged(cache / YOUNG, 6)
    target = cache / "elsewhere.pyz"
    target.write_bytes(b"x")
    link = cache / "factoryctl-agent-1111111111111111.pyz"
    link.symlink_to(target)
    aged(link, 30)
    built = bundle.agent_zipapp(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted([built.name, YOUNG, OTHER, link.name, target.name])


def test_nothing_is_removed_when_no_zipapp_is_built(cache: Path) -> None:
    built = bundle.agent_zipapp(cache)
    aged(cache / OLD, 30)
    bundle._VERIFIED.clear()  # another process: the file is checked again, and is current
    assert bundle.agent_zipapp(cache) == built
    assert (cache / OLD).exists()


def test_a_process_whose_zipapp_was_removed_builds_it_again(cache: Path) -> None:
    built = bundle.agent_zipapp(cache)
    data = built.read_bytes()
    os.unlink(built)  # pruned by a newer factoryctl's build
    assert bundle.agent_zipapp(cache) == built
    assert built.read_bytes() == data
