"""A real OpenSSH sshd on 127.0.0.1 for integration tests; any test dir can use it.

Import the fixtures into that directory's conftest.py (tests/ is on sys.path through tests/conftest.py):
`from sshd_fixture import known_hosts, ssh_node, sshd, sshd_factory  # noqa: F401`.

Each server gets throwaway host and user keys made with ssh-keygen in a temp dir, a free high port,
`Subsystem sftp internal-sftp` (unless `sftp=False`), raised MaxStartups/MaxSessions, and runs as the current user
(root here: PermitRootLogin prohibit-password). A missing sshd fails loudly: the test command installs it.

Fixtures:
- `sshd`: one server shared by the whole session (never kill it; use `sshd_factory` for that).
- `sshd_factory`: start extra servers (e.g. one to kill mid-command, one without SFTP); stopped after the test.
- `ssh_node`: build a `NodeSpec` pointing at a server, with its key and known_hosts already set up.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from factoryctl.transport.ssh import SshOptions

SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (high, picked by the kernel)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def keygen(path: Path, kind: str = "ed25519") -> Path:
    """Make a key pair with no passphrase; returns the private key's path."""
    subprocess.run([SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", "factoryctl-test", "-f", str(path)], check=True)
    return path


#: SSH options for tests: generous timeouts and a fast keepalive, so a loaded CI machine is not a timeout test.
PATIENT = SshOptions(connect_timeout_s=30, banner_timeout_s=30, auth_timeout_s=30, channel_timeout_s=30, keepalive_s=1)


@dataclass
class SshdServer:
    """A running sshd and everything a client needs to reach it."""

    root: Path
    port: int
    host_key: Path
    user_key: Path
    bin_dir: Path
    process: subprocess.Popen[bytes] | None = None
    user: str = field(default_factory=getpass.getuser)
    host: str = "127.0.0.1"

    @property
    def host_key_line(self) -> str:
        """`[127.0.0.1]:port ssh-ed25519 AAAA...`, ready for a known_hosts file."""
        kind, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[{self.host}]:{self.port} {kind} {blob}"

    def write_known_hosts(self, path: Path) -> Path:
        """Record this server's host key in `path` (appending)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(self.host_key_line + "\n")
        return path

    def write_factory(self, path: Path, known_hosts: Path, nodes: str) -> str:
        """Write a factory.yaml named `lab` whose SSH settings reach this server; `nodes` is the `nodes:` body."""
        ssh = (
            f"connect_timeout_s: 30, user: {self.user}, identity_file: {self.user_key}, "
            f"known_hosts: {known_hosts}, port: {self.port}"
        )
        path.write_text(f"name: lab\nssh: {{{ssh}}}\nnodes:\n{nodes}")
        return str(path)

    def node(self, name: str, known_hosts: Path, **fields: Any) -> Any:
        """A NodeSpec for this server."""
        from factoryctl.model.inventory import NodeSpec

        base: dict[str, Any] = {
            "name": name,
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "identity_file": str(self.user_key),
            "known_hosts": str(known_hosts),
        }
        base.update(fields)
        return NodeSpec(**base)

    def restart(self, new_host_key: bool = False) -> None:
        """Start the killed sshd again with the same config and port (with `new_host_key`: a reinstalled node's)."""
        if new_host_key:
            for old in (self.host_key, self.host_key.with_suffix(".pub")):
                old.unlink()
            keygen(self.host_key)
        with (self.root / "sshd.log").open("ab") as log:  # sshd writes to its own copy
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        raise AssertionError(f"sshd did not listen on {self.port} again within 10 s")

    def kill(self) -> None:
        """SIGKILL the listener and every session process it forked (sshd killed mid-command).

        Session processes call setsid(), so the process group alone does not reach them: walk the tree.
        """
        import psutil

        if self.process is None or self.process.poll() is not None:
            return
        try:
            family = [psutil.Process(self.process.pid), *psutil.Process(self.process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for member in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """Terminate sshd and its sessions."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, 15)  # sessions end when their client disconnects
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()


def _sshd_config(root: Path, port: int, host_key: Path, authorized: Path, bin_dir: Path, home: Path, sftp: bool) -> str:
    """An sshd_config for a test server on 127.0.0.1:`port`, running as this user with keys only."""
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "StrictModes no",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "MaxStartups 1000:30:2000",
        "MaxSessions 1000",
        "MaxAuthTries 6",
        "PrintMotd no",
        "LogLevel VERBOSE",
        # HOME points the login shell away from the real user's ~/.bashrc (slow and not ours) to an empty home.
        f"SetEnv PATH={bin_dir}:/usr/local/bin:/usr/bin:/bin HOME={home}",
    ]
    if sftp:
        lines.append("Subsystem sftp internal-sftp")
    return "\n".join(lines) + "\n"


def start_sshd(root: Path, sftp: bool = True, extra_config: str = "") -> SshdServer:
    """Start sshd in its own process group under `root`; waits until it accepts connections."""
    if not os.path.exists(SSHD):
        pytest.fail(f"{SSHD} is missing: install openssh-server (apt-get install -y openssh-server)", pytrace=False)
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    host_key = keygen(root / "ssh_host_ed25519_key")
    user_key = keygen(root / "id_ed25519")
    authorized = root / "authorized_keys"
    authorized.write_text(user_key.with_suffix(".pub").read_text())
    bin_dir = root / "bin"
    bin_dir.mkdir(exist_ok=True)
    home = root / "home"
    home.mkdir(exist_ok=True)
    port = free_port()
    config = root / "sshd_config"
    config.write_text(_sshd_config(root, port, host_key, authorized, bin_dir, home, sftp) + extra_config)
    with (root / "sshd.log").open("wb") as log:  # sshd writes to its own copy; ours is closed at once
        process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = SshdServer(root, port, host_key, user_key, bin_dir, process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited at start: {(root / 'sshd.log').read_text()}", pytrace=False)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return server
        time.sleep(0.02)
    server.stop()
    pytest.fail(f"sshd did not listen on {port}: {(root / 'sshd.log').read_text()}", pytrace=False)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """One sshd for the whole test session."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@pytest.fixture
def sshd_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., SshdServer]]:
    """Start extra servers for one test (to kill, or configured differently)."""
    servers: list[SshdServer] = []

    def start(sftp: bool = True, extra_config: str = "") -> SshdServer:
        server = start_sshd(tmp_path_factory.mktemp("sshd-extra"), sftp=sftp, extra_config=extra_config)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def known_hosts(sshd: SshdServer, tmp_path: Path) -> Path:
    """A known_hosts file that trusts the session sshd."""
    return sshd.write_known_hosts(tmp_path / "known_hosts")


@pytest.fixture
def ssh_node(sshd: SshdServer, known_hosts: Path) -> Callable[..., Any]:
    """`ssh_node("n1", **fields)`: a NodeSpec reaching the session sshd, its host key trusted."""

    def make(name: str = "n1", **fields: Any) -> Any:
        return sshd.node(name, fields.pop("known_hosts", known_hosts), **fields)

    return make


@pytest.fixture
def no_ssh_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's ssh-agent out of a test."""
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
