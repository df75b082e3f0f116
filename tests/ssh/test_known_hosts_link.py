"""`nodes trust` writes through a symbolic link at known_hosts, as ssh appends through it, keeping the file's mode.

It replaced the link with a regular 0600 file: the file a dotfile manager links to silently stopped getting keys.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from factoryctl.transport.known_hosts import HostKeyStatus, KnownHosts

KEY = base64.b64decode("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")
MINE = "gpu01 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"


def test_a_linked_known_hosts_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "known_hosts"
    real.write_text(MINE)
    real.chmod(0o644)
    link = tmp_path / "ssh" / "known_hosts"
    link.parent.mkdir()
    link.symlink_to(real)
    KnownHosts(link).record("10.0.0.1", 2222, "ssh-ed25519", KEY)
    assert link.is_symlink()
    assert os.readlink(link) == str(real)
    assert real.read_text().splitlines() == [
        MINE.strip(),
        f"[10.0.0.1]:2222 ssh-ed25519 {base64.b64encode(KEY).decode()}",
    ]
    assert real.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in link.parent.iterdir()) == ["known_hosts"]  # no temporary file left beside the link
    assert sorted(p.name for p in dotfiles.iterdir()) == ["known_hosts"]
    assert KnownHosts(link).check("10.0.0.1", 2222, "ssh-ed25519", KEY) is HostKeyStatus.known


def test_a_link_to_a_missing_file_creates_that_file_0600(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "known_hosts"
    real.parent.mkdir()
    link = tmp_path / "known_hosts"
    link.symlink_to(real)
    KnownHosts(link).record("gpu01", 22, "ssh-ed25519", KEY)
    assert link.is_symlink()
    assert real.read_text() == MINE
    assert real.stat().st_mode & 0o777 == 0o600


def test_a_regular_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    path.write_text("")
    path.chmod(0o640)
    KnownHosts(path).record("gpu01", 22, "ssh-ed25519", KEY)
    assert path.read_text() == MINE
    assert path.stat().st_mode & 0o777 == 0o640
