"""`known_hosts: /dev/null` knows no key, as ssh reads `UserKnownHostsFile /dev/null`, and nothing is recorded there.

Reading only regular files (a FIFO held every command forever) had made /dev/null "not a regular file" with the
hint to move it aside, which, followed as root, breaks the machine.
"""

from __future__ import annotations

import os
import stat

import pytest

from factoryctl.transport.known_hosts import KnownHosts, UnreadableKnownHosts

KEY = b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + bytes(32)


def test_dev_null_is_a_known_hosts_that_knows_no_key() -> None:
    known = KnownHosts(os.devnull)
    assert known.entries == []
    assert known.recorded_fingerprints("gpu01", 22) == []


def test_nothing_is_recorded_in_dev_null_and_the_hint_never_says_to_move_it() -> None:
    with pytest.raises(UnreadableKnownHosts) as refused:
        KnownHosts(os.devnull).record("gpu01", 22, "ssh-ed25519", KEY)
    assert refused.value.hint is not None
    assert "aside" not in refused.value.hint
    assert "regular file" in refused.value.hint
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
