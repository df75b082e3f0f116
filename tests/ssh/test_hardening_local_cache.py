"""A zipapp planted in a shared local cache is never shipped to a node (real sshd, the real agent).

The reviewer's attack: with XDG_CACHE_HOME in a directory others can write, another user plants
`factoryctl/factoryctl-agent-<hash>.pyz` (the name follows from the installed sources), and every node ran it as the
SSH user. Making the planted files another user's needs root, as in test_cache_security.py.
"""

from __future__ import annotations

import os
import zipapp

import pytest

from factoryctl.model.inventory import SimSpec
from factoryctl.transport import bundle
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_node import SshTransport

OPTIONS = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)
FOREIGN_UID = 65534  # nobody
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="making a file another user's needs root")


@as_root
def test_a_planted_local_zipapp_never_runs_on_the_node(ssh_node, tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "_FALLBACK", [])
    shared = tmp_path / "sharedcache"
    shared.mkdir()
    shared.chmod(0o1777)
    theirs = shared / "factoryctl"
    theirs.mkdir()
    marker = tmp_path / "PLANTED_RAN"
    src = tmp_path / "planted"
    src.mkdir()
    (src / "__main__.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    planted = theirs / f"factoryctl-agent-{bundle.bundle_hash()}.pyz"
    zipapp.create_archive(src, planted)
    for path in (theirs, planted):
        os.chown(path, FOREIGN_UID, FOREIGN_UID)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared))

    transport = SshTransport.open(ssh_node("n1", sim=SimSpec("h100-sxm", 1, 0)), "lab", OPTIONS)
    try:
        session = transport.start_agent(60)
        assert session.hello_info["backend"] == "sim"
        session.close()
    finally:
        transport.close()
    assert not marker.exists()
