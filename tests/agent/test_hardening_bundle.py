"""The local agent cache is trusted only when it is private, and a cached zipapp only when its bytes are ours.

The cached zipapp is shipped to every node and run there as the SSH user. Its name can be predicted from the
installed sources, so a file planted in a cache another user can write would have run on the whole fleet. A foreign
owner is made with chown to `nobody`'s uid, which needs root (as the node-side tests in tests/ssh do).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from factoryctl.transport import bundle

FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """No check or fallback directory remembered from another test."""
    monkeypatch.setattr(bundle, "_VERIFIED", {})
    monkeypatch.setattr(bundle, "_FALLBACK", [])


@pytest.fixture
def expected(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of the real zipapp, built in a fresh private cache."""
    return bundle.agent_zipapp(tmp_path_factory.mktemp("reference")).read_bytes()


def target_in(cache: Path) -> Path:
    return cache / f"factoryctl-agent-{bundle.bundle_hash()}.pyz"


def private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def shared(path: Path, mode: int) -> Path:
    path.mkdir()
    path.chmod(mode)  # mkdir's mode is cut by the umask
    return path


def test_a_planted_file_of_ours_with_other_bytes_is_rebuilt(tmp_path: Path, expected: bytes) -> None:
    cache = private(tmp_path / "cache")
    target_in(cache).write_bytes(b"import os; os.system('touch /tmp/pwned')\n")
    got = bundle.agent_zipapp(cache)
    assert got == target_in(cache)
    assert got.read_bytes() == expected


@as_root
def test_a_file_of_another_user_is_replaced(tmp_path: Path, expected: bytes) -> None:
    cache = private(tmp_path / "cache")
    planted = target_in(cache)
    planted.write_bytes(expected)  # even the right bytes: its owner could change them after the check
    os.chown(planted, FOREIGN_UID, FOREIGN_UID)
    got = bundle.agent_zipapp(cache)
    assert got.stat().st_uid == os.geteuid()
    assert got.read_bytes() == expected


def test_a_group_writable_file_is_replaced(tmp_path: Path, expected: bytes) -> None:
    cache = private(tmp_path / "cache")
    target_in(cache).write_bytes(expected)
    target_in(cache).chmod(0o666)
    got = bundle.agent_zipapp(cache)
    assert not got.stat().st_mode & 0o022
    assert got.read_bytes() == expected


def test_a_symbolic_link_in_its_place_is_replaced_and_its_target_untouched(tmp_path: Path, expected: bytes) -> None:
    cache = private(tmp_path / "cache")
    elsewhere = tmp_path / "elsewhere.pyz"
    elsewhere.write_bytes(expected)
    target_in(cache).symlink_to(elsewhere)
    got = bundle.agent_zipapp(cache)
    assert not got.is_symlink()
    assert got.read_bytes() == expected
    assert elsewhere.read_bytes() == expected


@as_root
@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o775], ids=["sticky", "world-writable", "group-writable"])
def test_a_cache_others_can_write_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, mode: int, expected: bytes
) -> None:
    cache = shared(tmp_path / "shared", mode)
    planted = target_in(cache)
    planted.write_bytes(b"import os; os.system('touch /tmp/pwned')\n")
    os.chown(planted, FOREIGN_UID, FOREIGN_UID)
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        got = bundle.agent_zipapp(cache)
    assert cache not in got.parents
    assert got.read_bytes() == expected
    assert stat.S_IMODE(got.parent.stat().st_mode) == 0o700
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"the agent cache {cache} is writable by group or others" in warning
    assert planted.read_bytes().startswith(b"import os")  # left alone: not ours to remove
    assert bundle.agent_zipapp(cache) == got  # the same private directory for the rest of the run


@as_root
def test_a_cache_of_another_user_is_not_used(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cache = private(tmp_path / "theirs")
    os.chown(cache, FOREIGN_UID, FOREIGN_UID)
    with caplog.at_level(logging.WARNING, logger="factoryctl.transport"):
        got = bundle.agent_zipapp(cache)
    assert cache not in got.parents
    assert f"belongs to uid {FOREIGN_UID}" in caplog.text


def test_a_cache_below_a_world_writable_directory_is_not_used(tmp_path: Path, expected: bytes) -> None:
    cache = shared(tmp_path / "open", 0o777) / "factoryctl"
    got = bundle.agent_zipapp(cache)
    assert tmp_path / "open" not in got.parents
    assert got.read_bytes() == expected


def test_a_new_cache_is_made_private(tmp_path: Path, expected: bytes) -> None:
    cache = tmp_path / "xdg" / "factoryctl"
    got = bundle.agent_zipapp(cache)
    assert got.parent == cache
    for made in (cache, cache.parent):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700


def test_a_symlinked_cache_is_used_through_its_resolved_path(tmp_path: Path, expected: bytes) -> None:
    real = private(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    got = bundle.agent_zipapp(tmp_path / "link")
    assert got.parent == real  # shipped from where it was checked, whatever the link points to later
