"""Root's agent zipapp cache is never made in a user's cache home, nor steered by another user's link.

The reviewer's attacks, as completion's cache had them (tests/foundation/test_completion_cache_path.py):
- under `su` (no `SUDO_UID`) keeping the user's `$XDG_CACHE_HOME`, root's first command made `~/.cache/factoryctl`
  root's (0700) before finding it no place for its zipapp; from then on the user's own zipapp cache was "not
  private" at every command and their completion cache could not be made;
- another user made a directory anyone may write with a link `factoryctl -> a directory of root's`: root with
  `$XDG_CACHE_HOME` there resolved the link and wrote the zipapp (and its temporary files) into root's directory.
Root then builds the agent in a private temporary directory, with a warning, as for any cache it cannot use.
Making files another user's needs root, as in tests/agent/test_hardening_bundle.py.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from factoryctl.transport import bundle

FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No check or fallback directory remembered from another test; no `sudo` (as under `su`)."""
    monkeypatch.setattr(bundle, "_VERIFIED", {})
    monkeypatch.setattr(bundle, "_FALLBACK", [])
    monkeypatch.setattr(bundle, "_UNWRITABLE", {})
    monkeypatch.delenv("SUDO_UID", raising=False)


def the_warning(caplog: pytest.LogCaptureFixture) -> str:
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return warning


def users_home(tmp_path: Path, *made: str) -> Path:
    """A home of uid `FOREIGN_UID` (0700), with its directories `made` (theirs, 0700)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    os.chown(home, FOREIGN_UID, FOREIGN_UID)
    path = home
    for name in made:
        path = path / name
        path.mkdir(mode=0o700)
        os.chown(path, FOREIGN_UID, FOREIGN_UID)
    return home


@as_root
def test_root_makes_no_cache_in_a_users_cache_home_under_su(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cache_home = users_home(tmp_path, ".cache") / ".cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        got = bundle.agent_zipapp()
    assert list(cache_home.iterdir()) == []  # no ~/.cache/factoryctl of root's
    assert cache_home not in bundle.shown_path(got).parents
    assert got.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    warning = the_warning(caplog)
    assert warning.startswith(
        f"the agent cache {cache_home / 'factoryctl'} does not exist, and root makes no directory in {cache_home}, "
        f"which belongs to uid {FOREIGN_UID}"
    )
    assert f"it is built in {bundle.shown_path(got).parent} for this run instead" in warning


@as_root
def test_root_makes_no_cache_home_in_a_users_home(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    home = users_home(tmp_path)
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        got = bundle.agent_zipapp(home / ".cache" / "factoryctl")
    assert list(home.iterdir()) == []
    assert home not in bundle.shown_path(got).parents
    assert f"root makes no directory in {home}, which belongs to uid {FOREIGN_UID}" in the_warning(caplog)


@as_root
def test_the_users_own_cache_is_left_theirs(tmp_path: Path) -> None:
    cache = users_home(tmp_path, ".cache", "factoryctl") / ".cache" / "factoryctl"
    got = bundle.agent_zipapp(cache)
    assert list(cache.iterdir()) == []
    assert cache not in bundle.shown_path(got).parents
    assert os.stat(cache).st_uid == FOREIGN_UID


@as_root
@pytest.mark.parametrize("mode", [0o777, 0o1777], ids=["world-writable", "sticky"])
def test_a_link_planted_in_a_shared_cache_home_is_not_followed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int
) -> None:
    roots = tmp_path / "roots-dir"
    roots.mkdir(mode=0o700)  # a directory of root's, private: the cache check alone finds nothing wrong with it
    squat = tmp_path / "squat"
    squat.mkdir()
    squat.chmod(mode)
    (squat / "factoryctl").symlink_to(roots)
    for path in (squat, squat / "factoryctl"):
        os.lchown(path, FOREIGN_UID, FOREIGN_UID)
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        got = bundle.agent_zipapp(squat / "factoryctl")
    assert list(roots.iterdir()) == []  # nothing written there
    assert roots not in bundle.shown_path(got).parents
    assert the_warning(caplog).startswith(
        f"the agent cache {squat / 'factoryctl'} is reached through a symbolic link another user made: "
        f"{squat / 'factoryctl'} is a symbolic link in {squat}, where anyone may write, "
        f"and belongs to uid {FOREIGN_UID}, not root"
    )


def test_a_link_of_ours_in_a_shared_directory_is_followed(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    (shared / "factoryctl").symlink_to(real)
    assert bundle.agent_zipapp(shared / "factoryctl").parent == real
