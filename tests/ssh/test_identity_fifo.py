"""An identity file (or its `.pub`, or its `-cert.pub`) that is no regular file is never waited on.

Found in review (session 23): paramiko's `PKey.from_path` opens the name as it is, and so did the read of `KEY.pub`,
so an identity file that is a FIFO held every command forever, waiting for a writer. Key files are now opened
without waiting, read only if regular, and parsed from memory (ssh_identities.py); every key type and format still
loads. Real sshd. So that the old code fails instead of hanging, a helper thread lets each waiting reader go.
"""

from __future__ import annotations

import base64
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sshd_fixture import SSH_KEYGEN, SshdServer

from factoryctl.errors import ExitCode
from factoryctl.transport.ssh_identities import SkippedKey, _load_key, _public_blob


@pytest.fixture
def fifo() -> Iterator[Callable[..., Path]]:
    """Make a FIFO at a path; a thread opens it for writing whenever someone reads it, writes `said` and closes it,
    so a reader that waited gets that and then end of file instead of waiting forever."""
    stop = threading.Event()
    made: dict[Path, bytes] = {}

    def let_go() -> None:
        while not stop.wait(0.05):
            for path, said in list(made.items()):
                try:
                    fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
                except OSError:  # ENXIO: no reader now
                    continue
                with contextlib.suppress(OSError):
                    os.write(fd, said)
                os.close(fd)

    writer = threading.Thread(target=let_go, daemon=True)
    writer.start()

    def make(path: Path, said: bytes = b"") -> Path:
        os.mkfifo(path, 0o600)
        made[path] = said
        return path

    yield make
    stop.set()
    writer.join(5)


def _factory(path: Path, server: SshdServer, known_hosts: Path, identity_file: Path) -> str:
    ssh = f"connect_timeout_s: 5, user: {server.user}, known_hosts: {known_hosts}, port: {server.port}"
    path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n  n1: {{host: 127.0.0.1, identity_file: {identity_file}}}\n")
    return str(path)


def _auth_message(cli: Any, config: str) -> str:
    r = cli("--config", config, "exec", "n1", "-o", "json", "--", "true")
    assert r.exit_code == ExitCode.CONNECTION, r.stderr
    [error] = r.json()["errors"]
    assert error["error"] == "auth", error
    return str(error["message"])


def test_an_identity_file_that_is_a_fifo_is_skipped_saying_so(
    cli: Any, sshd: SshdServer, known_hosts: Path, fifo: Callable[..., Path], tmp_path: Path
) -> None:
    key = fifo(tmp_path / "id_fifo")
    message = _auth_message(cli, _factory(tmp_path / "f.yaml", sshd, known_hosts, key))
    assert (
        message
        == f"no key to offer to {sshd.user}@127.0.0.1:{sshd.port} ({key} is not a regular file: not read as a key)"
    )


def test_an_identity_files_pub_that_is_a_fifo_is_not_read(
    fifo: Callable[..., Path], sshd: SshdServer, tmp_path: Path
) -> None:
    """Were it read, the public key written into it would be the identity file's (and so its agent copy's)."""
    key = tmp_path / "id_garbled"
    key.write_text("not a key\n")
    fifo(tmp_path / "id_garbled.pub", sshd.user_key.with_suffix(".pub").read_bytes())
    assert _public_blob(str(key)) is None


def test_a_certificate_that_is_a_fifo_is_not_waited_on_and_the_key_logs_in(
    cli: Any, sshd: SshdServer, known_hosts: Path, fifo: Callable[..., Path], tmp_path: Path
) -> None:
    fifo(Path(f"{sshd.user_key}-cert.pub"))
    try:
        r = cli(
            "--config",
            _factory(tmp_path / "f.yaml", sshd, known_hosts, sshd.user_key),
            "exec",
            "n1",
            "--",
            "echo",
            "hi",
        )
    finally:
        os.unlink(f"{sshd.user_key}-cert.pub")
    assert (r.exit_code, r.stdout.splitlines()[-1:]) == (0, ["hi"]), r.stderr


def test_an_identity_file_that_is_a_directory_is_skipped_saying_so(tmp_path: Path) -> None:
    skipped = _load_key(str(tmp_path))
    assert skipped == SkippedKey(str(tmp_path), f"{tmp_path} is not a regular file: not read as a key", False)


KINDS = [
    ("ed25519", ["-t", "ed25519"]),
    ("ecdsa", ["-t", "ecdsa"]),
    ("rsa", ["-t", "rsa", "-b", "2048"]),
    ("ecdsa-pem", ["-t", "ecdsa", "-m", "PEM"]),
    ("rsa-pem", ["-t", "rsa", "-b", "2048", "-m", "PEM"]),
]


@pytest.mark.parametrize(("kind", "args"), KINDS, ids=[k for k, _ in KINDS])
def test_every_key_type_and_format_still_loads(tmp_path: Path, kind: str, args: list[str]) -> None:
    path = tmp_path / f"id_{kind}"
    subprocess.run([SSH_KEYGEN, "-q", *args, "-N", "", "-f", str(path)], check=True)
    key = _load_key(str(path))
    assert not isinstance(key, SkippedKey), key
    assert key.asbytes() == base64.b64decode(path.with_suffix(".pub").read_text().split()[1])


def test_a_certificate_next_to_the_key_is_loaded_with_it(tmp_path: Path) -> None:
    ca, path = tmp_path / "ca", tmp_path / "id_ed25519"
    for made in (ca, path):
        subprocess.run([SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(made)], check=True)
    subprocess.run([SSH_KEYGEN, "-q", "-s", str(ca), "-I", "me", "-n", "root", f"{path}.pub"], check=True)
    key = _load_key(str(path))
    assert not isinstance(key, SkippedKey), key
    assert key.public_blob is not None
    assert key.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"
