"""Authentication and host-key reading say what went wrong, within the connect timeout (docs/ssh.md).

Found in review: an ssh-agent socket that accepts and never answers held every command forever (neither --timeout
nor ssh.connect_timeout_s bounded paramiko's wait for it); an agent that lists its keys but never signs (a
confirmation nobody gives) was reported as the server refusing the key; a known_hosts that is a directory, a FIFO or
unreadable gave a raw OSError (kind `agent`) or hung; a server that sends its banner and then goes silent was said to
have closed the connection; a private key file others may read was used, where ssh refuses it; and an SSH_AUTH_SOCK
naming no socket was skipped without a word. Real sshd; the fake ssh-agents here are the agent, not paramiko.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer, free_port, keygen

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh import SshOptions
from factoryctl.transport.ssh_pool import SshPool

#: How long a fake agent or server stays silent at most, so that a regression fails the test instead of hanging it.
_SILENT_AT_MOST_S = 20.0
_IDENTITIES_ANSWER = 12


def _factory(path: Path, server: SshdServer, known_hosts: Path, identity_file: Path | None) -> str:
    """factory.yaml with node n1 on `server`, 2 s to connect; no identity_file means the default ~/.ssh keys."""
    key = f", identity_file: {identity_file}" if identity_file else ""
    ssh = f"connect_timeout_s: 2, user: {server.user}, known_hosts: {known_hosts}, port: {server.port}"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n1: {{host: 127.0.0.1{key}}}\n")
    return str(path)


class FakeAgent:
    """An ssh-agent socket that never answers, or (with `listed`) lists one key and never signs with it.

    Each connection is held until the test ends or `_SILENT_AT_MOST_S` passed, then closed.
    """

    def __init__(self, path: Path, listed: bytes | None = None) -> None:
        self.path = path
        self._listed = listed
        self._done = threading.Event()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(16)
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._hold, args=(conn,), daemon=True).start()

    def _hold(self, conn: socket.socket) -> None:
        with conn:
            if self._listed is not None:
                conn.recv(4096)  # REQUEST_IDENTITIES: answered; the sign request after it never is
                conn.sendall(_identities_answer(self._listed))
            self._done.wait(_SILENT_AT_MOST_S)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._server.close()


def _identities_answer(blob: bytes) -> bytes:
    """The agent's IDENTITIES_ANSWER listing one key (blob), framed with its length."""
    comment = b"fake"
    body = bytes([_IDENTITIES_ANSWER]) + struct.pack(">I", 1)
    body += struct.pack(">I", len(blob)) + blob + struct.pack(">I", len(comment)) + comment
    return struct.pack(">I", len(body)) + body


@pytest.fixture
def fake_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., FakeAgent]]:
    """Start a `FakeAgent` that SSH_AUTH_SOCK points at; stopped after the test."""
    agents: list[FakeAgent] = []

    def start(listed: bytes | None = None) -> FakeAgent:
        agent = FakeAgent(tmp_path / f"agent{len(agents)}.sock", listed)
        agents.append(agent)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.path))
        return agent

    yield start
    for agent in agents:
        agent.close()


def _unauthorized_key(tmp_path: Path) -> Path:
    """A key pair of its own, authorized nowhere."""
    (tmp_path / "keys").mkdir()
    return keygen(tmp_path / "keys" / "stranger")


def test_an_agent_that_never_answers_is_said_and_the_identity_file_is_still_tried(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    agent = fake_agent()
    key = _unauthorized_key(tmp_path)
    r = cli("--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, key), "exec", "n1", "-o", "json", "--", "true")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    assert error["message"] == (
        f"{sshd.user}@127.0.0.1:{sshd.port} refused authentication (ssh-agent (SSH_AUTH_SOCK={agent.path}) did not "
        f"answer within 2 s; tried {key})"
    )


def test_an_agent_that_never_answers_does_not_stop_a_good_key(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    fake_agent()
    r = cli(
        "--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, sshd.user_key), "exec", "n1", "--", "echo", "hi"
    )
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr


def test_an_agent_that_lists_a_key_but_never_signs_is_not_called_a_refusal(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[..., FakeAgent], tmp_path: Path
) -> None:
    blob = base64.b64decode(sshd.user_key.with_suffix(".pub").read_text().split()[1])
    fake_agent(listed=blob)
    r = cli(
        "--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, None), "exec", "n1", "-o", "json", "--", "true"
    )
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    assert error["message"].startswith("ssh-agent did not sign within 2 s for agent key ssh-ed25519 SHA256:")
    assert "refused" not in error["message"]
    assert "hint: confirm the key's use in ssh-agent" in r.stderr
    assert "authorized_keys" not in r.stderr


def test_an_agent_socket_that_does_not_exist_is_said_and_nothing_offered_is_no_refusal(
    cli: Any, sshd: SshdServer, known_hosts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = tmp_path / "gone.sock"
    monkeypatch.setenv("SSH_AUTH_SOCK", str(gone))
    r = cli(
        "--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, None), "exec", "n1", "-o", "json", "--", "true"
    )
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["message"] == (
        f"no key to offer to {sshd.user}@127.0.0.1:{sshd.port} (ssh-agent (SSH_AUTH_SOCK={gone}): no such socket)"
    )
    assert "hint: start (or restart) the ssh-agent SSH_AUTH_SOCK names" in r.stderr


def test_with_no_key_at_all_nothing_is_said_to_be_refused(
    cli: Any, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    r = cli(
        "--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, None), "exec", "n1", "-o", "json", "--", "true"
    )
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["message"] == (
        f"no key to offer to {sshd.user}@127.0.0.1:{sshd.port} (no identity file and no ssh-agent keys)"
    )


def test_a_private_key_others_can_read_is_refused_as_ssh_refuses_it(
    cli: Any, sshd: SshdServer, known_hosts: Path, tmp_path: Path
) -> None:
    key = tmp_path / "open_key"
    shutil.copyfile(sshd.user_key, key)  # the authorized key: only its mode keeps it out
    key.chmod(0o644)
    r = cli("--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, key), "exec", "n1", "-o", "json", "--", "true")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    assert error["error"] == "auth"
    assert error["message"] == (
        f"no key to offer to {sshd.user}@127.0.0.1:{sshd.port} (the key {key} is accessible to its group and others "
        "(mode 0644): not used, as ssh refuses it (UNPROTECTED PRIVATE KEY FILE))"
    )
    assert f"hint: run `chmod 600 {key}`" in r.stderr
    key.chmod(0o600)
    ok = cli("--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, key), "exec", "n1", "--", "true")
    assert ok.exit_code == 0, ok.stderr


def _host_key_error(cli: Any, sshd: SshdServer, known_hosts: Path, tmp_path: Path) -> dict[str, str]:
    r = cli("--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, sshd.user_key), "nodes", "-o", "json")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]  # type: ignore[index]
    return dict(error)


def test_a_known_hosts_that_is_a_directory_is_a_host_key_error_saying_so(
    cli: Any, sshd: SshdServer, tmp_path: Path
) -> None:
    directory = tmp_path / "kh.d"
    directory.mkdir()
    error = _host_key_error(cli, sshd, directory, tmp_path)
    assert (error["error"], error["message"]) == ("host_key", f"cannot read known_hosts {directory}: is a directory")


def test_a_known_hosts_that_is_a_fifo_is_refused_without_waiting_on_it(
    cli: Any, sshd: SshdServer, tmp_path: Path
) -> None:
    fifo = tmp_path / "kh.fifo"
    os.mkfifo(fifo)
    stop = threading.Event()
    writer = threading.Thread(target=_end_each_read, args=(fifo, stop), daemon=True)  # a reader that waits is let go
    writer.start()
    try:
        error = _host_key_error(cli, sshd, fifo, tmp_path)
        trust = cli("--config", str(tmp_path / "f.yaml"), "nodes", "trust", "--yes", "-o", "json")
    finally:
        stop.set()
        writer.join(5)
    assert (error["error"], error["message"]) == ("host_key", f"cannot read known_hosts {fifo}: is not a regular file")
    assert trust.exit_code == ExitCode.CONNECTION, trust.stderr
    assert f"cannot read known_hosts {fifo}: is not a regular file" in trust.stderr


def _end_each_read(fifo: Path, stop: threading.Event) -> None:
    """Open the FIFO for writing whenever someone reads it, and close it at once: the reader gets end of file."""
    while not stop.wait(0.05):
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader now
            continue
        os.close(fd)


def test_a_known_hosts_that_cannot_be_read_is_a_host_key_error_saying_so(sshd: SshdServer, tmp_path: Path) -> None:
    known = sshd.write_known_hosts(tmp_path / "known_hosts")
    known.chmod(0)
    config = _factory(tmp_path / "f.yaml", sshd, known, sshd.user_key)
    # root reads any file; without CAP_DAC_OVERRIDE (and DAC_READ_SEARCH) it is held to the mode as any user is
    caps = "-dac_override,-dac_read_search"
    command = [sys.executable, "-m", "factoryctl", "--config", config, "nodes", "-o", "json"]
    r = subprocess.run(
        ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}", "--", *command],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == ExitCode.CONNECTION, r.stderr
    assert '"error": "host_key"' in r.stdout
    assert f"cannot read known_hosts {known}: permission denied" in r.stdout
    assert f"hint: make {known} readable by you" in r.stderr


class BannerThenSilence:
    """A TCP server that sends an SSH banner and then says nothing (a sshd hung after its greeting)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._done = threading.Event()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._done.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
                self._done.wait(_SILENT_AT_MOST_S)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._server.close()


def test_a_server_silent_after_its_banner_did_not_finish_the_handshake(sshd: SshdServer, known_hosts: Path) -> None:
    silent = BannerThenSilence()
    pool = SshPool(SshOptions(connect_timeout_s=30, banner_timeout_s=1, auth_timeout_s=30, channel_timeout_s=30))
    try:
        with pytest.raises(NodeError) as caught:
            pool.connect(sshd.node("hung", known_hosts, port=silent.port))
    finally:
        pool.close()
        silent.close()
    error = caught.value
    assert (error.kind, error.exit_code) == ("banner", ExitCode.CONNECTION)
    assert error.message == (
        f"127.0.0.1:{silent.port} did not finish the SSH handshake within 1 s (its sshd may be hung or overloaded)"
    )
    assert error.hint is not None
    assert "hung" in error.hint
