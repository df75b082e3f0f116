"""Connecting, host keys and credentials against a real sshd."""

from __future__ import annotations

import socket
import time

import pytest
from silent_listener import silent_listener
from sshd_fixture import free_port

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

FAST = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30)


def test_runs_a_command(ssh_node):
    pool = SshPool(FAST)
    try:
        result = pool.connect(ssh_node()).run(["echo", "hi"], timeout=60)
    finally:
        pool.close()
    assert (result.exit_code, result.stdout, result.stderr) == (0, b"hi\n", b"")


def test_socket_has_tcp_nodelay(ssh_node):
    pool = SshPool(FAST)
    try:
        sock = pool.connect(ssh_node()).transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        pool.close()


def test_refused_port(ssh_node):
    port = free_port()  # nothing listens there
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(port=port))
    assert caught.value.kind == "refused"
    assert caught.value.exit_code == ExitCode.CONNECTION


def test_listener_that_never_speaks_ssh_times_out(ssh_node):
    started = time.monotonic()
    quick_banner = SshOptions(connect_timeout_s=30, banner_timeout_s=1, auth_timeout_s=30, channel_timeout_s=30)
    with silent_listener() as port, pytest.raises(NodeError) as caught:
        SshPool(quick_banner).connect(ssh_node(port=port))
    assert caught.value.kind == "banner"
    assert caught.value.exit_code == ExitCode.CONNECTION
    assert time.monotonic() - started < 30


def test_unknown_dns_name(ssh_node):
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(host="no-such-node.invalid"))
    assert caught.value.kind == "dns"


def test_unknown_host_key_is_refused_with_trust_hint(ssh_node, tmp_path):
    empty = tmp_path / "empty_known_hosts"
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(known_hosts=str(empty)))
    assert caught.value.kind == "host_key"
    assert caught.value.exit_code == ExitCode.CONNECTION
    assert "factoryctl nodes trust n1" in (caught.value.hint or "")
    assert not empty.exists()


def test_changed_host_key_is_refused(ssh_node, sshd, tmp_path):
    other = tmp_path / "other"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    kind, blob = (tmp_path / "other.pub").read_text().split()[:2]
    path = tmp_path / "kh"
    path.write_text(f"[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(known_hosts=str(path)))
    assert caught.value.kind == "host_key"
    assert "CHANGED" in caught.value.message


def test_revoked_host_key_is_refused(ssh_node, sshd, tmp_path):
    kind, blob = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    path = sshd.write_known_hosts(tmp_path / "kh")
    with path.open("a") as out:
        out.write(f"@revoked * {kind} {blob}\n")
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(known_hosts=str(path)))
    assert caught.value.kind == "host_key"
    assert "REVOKED" in caught.value.message


def test_hashed_entry_and_cert_authority_line(ssh_node, sshd, tmp_path):
    import subprocess

    path = tmp_path / "kh"
    kind, blob = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    path.write_text(f"@cert-authority *.example.com {kind} {blob}\n" + sshd.host_key_line + "\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    assert "|1|" in path.read_text()
    pool = SshPool(FAST)
    try:
        assert pool.connect(ssh_node(known_hosts=str(path))).run(["true"], timeout=60).exit_code == 0
    finally:
        pool.close()


def test_wrong_credentials(ssh_node, tmp_path):
    import subprocess

    wrong = tmp_path / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    with pytest.raises(NodeError) as caught:
        SshPool(FAST).connect(ssh_node(identity_file=str(wrong)))
    assert caught.value.kind == "auth"
    assert caught.value.exit_code == ExitCode.CONNECTION


def test_ssh_agent_key_is_used(ssh_node, sshd, tmp_path, monkeypatch):
    import os
    import subprocess

    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        subprocess.run(["ssh-add", "-q", str(sshd.user_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        pool = SshPool(FAST)
        try:
            spec = ssh_node(identity_file=str(tmp_path / "absent"))
            assert pool.connect(spec).run(["true"], timeout=60).exit_code == 0
        finally:
            pool.close()
    finally:
        agent.terminate()
        agent.wait()


def test_a_silent_listener_costs_no_paramiko_thread_while_it_waits(ssh_node):
    """The banner is awaited with a blocking poll before paramiko starts: its own wait wakes every 0.1 s on a thread
    per connection, and 900 silent nodes took a controller's cores and starved the nodes that answer."""
    import threading

    import paramiko

    options = SshOptions(connect_timeout_s=30, banner_timeout_s=2, auth_timeout_s=30, channel_timeout_s=30)
    outcome: dict[str, NodeError] = {}

    def ours(thread: threading.Thread, port: int) -> bool:
        try:
            return isinstance(thread, paramiko.Transport) and thread.sock.getpeername()[1] == port
        except OSError:
            return False

    with silent_listener() as port:

        def attempt() -> None:
            try:
                SshPool(options).connect(ssh_node(port=port))
            except NodeError as exc:
                outcome["error"] = exc

        runner = threading.Thread(target=attempt)
        runner.start()
        transports = 0
        while runner.is_alive():
            transports += sum(ours(t, port) for t in threading.enumerate())
            runner.join(0.05)
    assert transports == 0
    assert outcome["error"].kind == "banner"
    assert "sent no SSH banner within 2 s" in outcome["error"].message
