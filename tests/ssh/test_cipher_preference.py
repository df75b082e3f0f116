"""The cipher factoryctl negotiates with a real sshd: AES-GCM when the server offers it, AES-CTR when it does not.

paramiko lists AES-CTR first; factoryctl offers AES-GCM first (one AEAD call per packet instead of CTR plus an HMAC),
removing nothing, so a server configured without GCM still connects.
"""

from __future__ import annotations

from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

FAST = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


def test_a_server_offering_gcm_negotiates_gcm(ssh_node):
    pool = SshPool(FAST)
    try:
        connection = pool.connect(ssh_node())
        assert connection.transport.remote_cipher == "aes128-gcm@openssh.com"
        assert connection.transport.local_cipher == "aes128-gcm@openssh.com"
        assert connection.run(["echo", "hi"], timeout=60).stdout == b"hi\n"
    finally:
        pool.close()


def test_a_server_offering_only_aes_ctr_still_connects(sshd_factory, tmp_path):
    server = sshd_factory(extra_config="Ciphers aes128-ctr\n")
    pool = SshPool(FAST)
    try:
        connection = pool.connect(server.node("ctr", server.write_known_hosts(tmp_path / "known_hosts")))
        assert connection.transport.remote_cipher == "aes128-ctr"
        assert connection.run(["echo", "hi"], timeout=60).stdout == b"hi\n"
    finally:
        pool.close()
