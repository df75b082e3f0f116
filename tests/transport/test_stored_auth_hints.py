"""A node's auth failure read back from the controller's store gets the hint the direct poll gave.

`nodes` and `gpus` read a running controller's store, where only the message is kept: the hint is rebuilt from it
(`hints.auth_message_hint`). A key file that factory.yaml's identity_file names but that does not exist got the
general hint there, while the direct poll named the identity_file line to correct.
"""

from __future__ import annotations

from factoryctl.transport import hints
from factoryctl.transport.ssh_identities import SkippedKey, auth_hint

MISSING = "root@10.0.0.7:22 refused authentication (no identity file /home/ops/.ssh/id_ed25519)"


def test_a_missing_key_file_read_back_gets_the_direct_polls_hint() -> None:
    direct = auth_hint(
        [SkippedKey("/home/ops/.ssh/id_ed25519", "no identity file /home/ops/.ssh/id_ed25519", False)], 0
    )
    assert hints.node_error_hint("n1", "auth", MISSING) == direct
    assert "identity_file that names /home/ops/.ssh/id_ed25519" in direct


def test_no_key_at_all_is_not_read_as_a_missing_file() -> None:
    message = "root@10.0.0.7:22 refused authentication (no identity file and no ssh-agent keys)"
    assert hints.node_error_hint("n1", "auth", message) == auth_hint([], 0)
