"""An ssh-agent's answer is bounded as a whole, in time and in length (ssh_agent_client.py).

Found in review (session 23): the agent's timeout applied to each read, and paramiko reads an answer with as many
reads as it takes, so an agent sending one byte every few seconds held `exec --timeout 10` for hours; and paramiko
reads an answer of whatever length the agent announces (up to 4 GiB): one announcing 256 MiB took 100 s and 568 MB.
Now each request's answer has the timeout in all, and one announced longer than OpenSSH's AGENT_MAX_LEN (256 KiB)
is refused before any of it is read, said in one sentence, the identity files still tried. Real sshd; the fake
ssh-agents here are the peer under test, not paramiko.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SshdServer, keygen

from factoryctl.errors import ExitCode
from factoryctl.transport.ssh_agent_client import agent_keys

#: How long a fake agent keeps at it at most, so that a regression fails the test instead of hanging it.
_AT_MOST_S = 10.0
_IDENTITIES_ANSWER = 12
#: OpenSSH's AGENT_MAX_LEN: the longest answer an agent may give.
MAX_ANSWER_BYTES = 256 * 1024
#: A conversation: what the agent does with one accepted connection, given a way to wait that ends with the test.
Serve = Callable[[socket.socket, Callable[[float], bool]], None]


class FakeAgent:
    """An ssh-agent socket that serves each connection with `serve`, until the test ends or `_AT_MOST_S` passed."""

    def __init__(self, path: Path, serve: Serve) -> None:
        self.path = path
        self._serve_one = serve
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
        with conn, contextlib.suppress(OSError):  # the client went away: what it did about it is under test
            self._serve_one(conn, self._done.wait)

    def close(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._server.close()


@pytest.fixture
def fake_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Serve], FakeAgent]]:
    """Start a `FakeAgent` that SSH_AUTH_SOCK points at; stopped after the test."""
    agents: list[FakeAgent] = []

    def start(serve: Serve) -> FakeAgent:
        agent = FakeAgent(tmp_path / f"agent{len(agents)}.sock", serve)
        agents.append(agent)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(agent.path))
        return agent

    yield start
    for agent in agents:
        agent.close()


def _identities_answer(blob: bytes, comment: bytes = b"fake") -> bytes:
    """The agent's IDENTITIES_ANSWER listing one key (blob), framed with its length."""
    body = bytes([_IDENTITIES_ANSWER]) + struct.pack(">I", 1)
    body += struct.pack(">I", len(blob)) + blob + struct.pack(">I", len(comment)) + comment
    return struct.pack(">I", len(body)) + body


def _trickle(conn: socket.socket, wait: Callable[[float], bool], length: int) -> None:
    """Announce an answer of `length` bytes, then send one byte of it every 0.3 s, never all of it in time."""
    conn.sendall(struct.pack(">I", length))
    for _ in range(min(length, int(_AT_MOST_S / 0.3))):
        if wait(0.3):
            return
        conn.sendall(b"\x0c")


def trickling(conn: socket.socket, wait: Callable[[float], bool]) -> None:
    """Answer the key list slowly, a byte at a time."""
    conn.recv(4096)
    _trickle(conn, wait, 4096)


def announcing_too_much(conn: socket.socket, wait: Callable[[float], bool]) -> None:
    """Announce a 64 MiB answer to the key list, then send nothing of it."""
    conn.recv(4096)
    conn.sendall(struct.pack(">I", 64 << 20))
    wait(_AT_MOST_S)


def announcing_too_much_now(conn: socket.socket, wait: Callable[[float], bool]) -> None:
    """Announce a 64 MiB answer (to whatever was asked last), then send nothing of it."""
    conn.sendall(struct.pack(">I", 64 << 20))
    wait(_AT_MOST_S)


def listing(blob: bytes, then: Callable[[socket.socket, Callable[[float], bool]], None]) -> Serve:
    """List the key `blob`, then answer the sign request with `then`."""

    def serve(conn: socket.socket, wait: Callable[[float], bool]) -> None:
        conn.recv(4096)
        conn.sendall(_identities_answer(blob))
        conn.recv(65536)  # the sign request
        then(conn, wait)

    return serve


def _factory(path: Path, server: SshdServer, known_hosts: Path, identity_file: Path | None) -> str:
    """factory.yaml with node n1 on `server`, 2 s to connect; no identity_file means the default ~/.ssh keys."""
    key = f", identity_file: {identity_file}" if identity_file else ""
    ssh = f"connect_timeout_s: 2, user: {server.user}, known_hosts: {known_hosts}, port: {server.port}"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n1: {{host: 127.0.0.1{key}}}\n")
    return str(path)


def _auth_error(cli: Any, config: str) -> tuple[dict[str, str], str]:
    r = cli("--config", config, "exec", "n1", "-o", "json", "--timeout", "30", "--", "true")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]
    assert error["error"] == "auth", error
    return error, r.stderr


def _stranger(tmp_path: Path) -> Path:
    """A key pair of its own, authorized nowhere."""
    (tmp_path / "keys").mkdir()
    return keygen(tmp_path / "keys" / "stranger")


def _authorized_blob(server: SshdServer) -> bytes:
    return base64.b64decode(server.user_key.with_suffix(".pub").read_text().split()[1])


def test_an_agent_trickling_its_key_list_is_said_within_the_timeout_and_the_identity_file_still_tried(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[[Serve], FakeAgent], tmp_path: Path
) -> None:
    agent = fake_agent(trickling)
    key = _stranger(tmp_path)
    error, _ = _auth_error(cli, _factory(tmp_path / "f.yaml", sshd, known_hosts, key))
    assert error["message"] == (
        f"{sshd.user}@127.0.0.1:{sshd.port} refused authentication (ssh-agent (SSH_AUTH_SOCK={agent.path}) did not "
        f"answer within 2 s; tried {key})"
    )


def test_an_agent_announcing_a_huge_key_list_is_refused_in_one_sentence_and_the_identity_file_still_tried(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[[Serve], FakeAgent], tmp_path: Path
) -> None:
    agent = fake_agent(announcing_too_much)
    key = _stranger(tmp_path)
    error, stderr = _auth_error(cli, _factory(tmp_path / "f.yaml", sshd, known_hosts, key))
    assert error["message"] == (
        f"{sshd.user}@127.0.0.1:{sshd.port} refused authentication (ssh-agent (SSH_AUTH_SOCK={agent.path}) sent an "
        f"answer longer than 256 KiB, which no ssh-agent sends: its keys are not used; tried {key})"
    )
    assert "hint: start (or restart) the ssh-agent SSH_AUTH_SOCK names" in stderr


def test_a_good_identity_file_still_works_past_an_agent_announcing_a_huge_key_list(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[[Serve], FakeAgent], tmp_path: Path
) -> None:
    fake_agent(announcing_too_much)
    r = cli(
        "--config", _factory(tmp_path / "f.yaml", sshd, known_hosts, sshd.user_key), "exec", "n1", "--", "echo", "hi"
    )
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr


def test_an_agent_trickling_its_signature_did_not_sign_and_was_not_refused(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[[Serve], FakeAgent], tmp_path: Path
) -> None:
    fake_agent(listing(_authorized_blob(sshd), lambda conn, wait: _trickle(conn, wait, 4096)))
    error, stderr = _auth_error(cli, _factory(tmp_path / "f.yaml", sshd, known_hosts, None))
    assert error["message"].startswith("ssh-agent did not sign within 2 s for agent key ssh-ed25519 SHA256:")
    assert "hint: confirm the key's use in ssh-agent" in stderr


def test_an_agent_announcing_a_huge_signature_is_said_as_a_broken_agent(
    cli: Any, sshd: SshdServer, known_hosts: Path, fake_agent: Callable[[Serve], FakeAgent], tmp_path: Path
) -> None:
    agent = fake_agent(listing(_authorized_blob(sshd), announcing_too_much_now))
    error, stderr = _auth_error(cli, _factory(tmp_path / "f.yaml", sshd, known_hosts, None))
    assert error["message"].startswith(
        f"ssh-agent (SSH_AUTH_SOCK={agent.path}) sent an answer longer than 256 KiB, which no ssh-agent sends, when "
        "asked to sign for agent key ssh-ed25519 SHA256:"
    )
    assert "hint: start (or restart) the ssh-agent SSH_AUTH_SOCK names" in stderr


def test_an_answer_as_long_as_openssh_allows_is_read(
    fake_agent: Callable[[Serve], FakeAgent], sshd: SshdServer
) -> None:
    blob = _authorized_blob(sshd)
    padding = MAX_ANSWER_BYTES - len(_identities_answer(blob, b"")) + 4  # the length field is not counted

    def serve(conn: socket.socket, wait: Callable[[float], bool]) -> None:
        conn.recv(4096)
        conn.sendall(_identities_answer(blob, b"c" * padding))
        wait(_AT_MOST_S)

    fake_agent(serve)
    keys = agent_keys(30)
    try:
        assert keys.note is None
        assert [key.asbytes() for key in keys.keys] == [blob]
    finally:
        keys.close()
