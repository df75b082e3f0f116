"""The quick start's "Your own nodes" steps run as written, on the file `factoryctl init` wrote, against a real sshd.

The quick start stopped at its one local node: it never said how to add an SSH node, that its host key must be
trusted first (`nodes trust`), or that `events` reads what `controller run` stores. The node here is the session's
sshd on 127.0.0.1, named gpu01 by the user's ~/.ssh/config (HostName, Port, User, IdentityFile), as the section
tells a newcomer to reach it; it runs the simulated driver. `dash` needs a terminal and is left out.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_process import CLI_ARGV
from sshd_fixture import SshdServer, sshd  # noqa: F401 - the fixture
from test_docs import REPO, quickstart_commands
from user_ssh_config import write_user_ssh_config
from waiting import wait_for

SECTION = "4. Your own nodes"


def _newcomer(cli: Any, home: Path, server: SshdServer, workdir: Path) -> None:
    """~/.ssh/config reaching gpu01 as `ssh gpu01` would, and the init file with gpu01 added under `nodes:`."""
    key = home / ".ssh" / "mykey"
    key.parent.mkdir(exist_ok=True)
    shutil.copy(server.user_key, key)
    key.chmod(0o600)
    write_user_ssh_config(
        home, f"Host gpu01\n  HostName 127.0.0.1\n  Port {server.port}\n  User {server.user}\n  IdentityFile {key}\n"
    )
    assert cli("init").exit_code == 0
    factory = workdir / "factory.yaml"
    factory.write_text(factory.read_text().replace("\nnodes:", "\nnodes:\n  gpu01: {sim: h100-sxm}", 1))


def _said(events: str, kind: str, node: str) -> bool:
    """Whether the `events` table has a `kind` event of `node` (columns TIME SEVERITY KIND NODE MESSAGE)."""
    return any(line.split()[2:4] == [kind, node] for line in events.splitlines())


def test_the_sections_yaml_names_gpu01_by_its_host() -> None:
    text = (REPO / "docs" / "quickstart.md").read_text().split(f"## {SECTION}", 1)[1]
    nodes = yaml.safe_load(text.split("```yaml\n", 1)[1].split("```", 1)[0])["nodes"]
    assert nodes["gpu01"] == {"host": "10.0.0.11"}
    assert nodes["ws"]["transport"] == "local"


def test_your_own_nodes_runs_as_written(
    cli: Any,
    isolated_home: Path,
    sshd: SshdServer,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))  # not the real ~/.cache
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _newcomer(cli, isolated_home, sshd, work)
    commands = quickstart_commands(SECTION)
    assert [argv[:2] for argv in commands[:2]] == [["nodes", "trust"], ["nodes"]]
    before = cli("events")  # no store before the controller ran: an empty log, exit 0, as the section says
    assert (before.exit_code, before.stdout.split()) == (0, ["TIME", "SEVERITY", "KIND", "NODE", "MESSAGE"])
    controller: subprocess.Popen[bytes] | None = None
    try:
        for argv in commands:
            if argv == ["controller", "run"]:  # "in another terminal"
                controller = subprocess.Popen([*CLI_ARGV, *argv], stderr=subprocess.DEVNULL, cwd=work)
                wait_for(lambda: _said(cli("events").stdout, "node_up", "gpu01"), what="gpu01 up in events")
                continue
            if argv == ["dash"]:
                continue  # needs a terminal
            done = cli(*argv, stdin="y\n", tty=argv[:2] == ["nodes", "trust"])
            assert done.exit_code == 0, (argv, done.stderr)
            assert "gpu01" in done.stdout or argv == ["controller", "status"], (argv, done.stdout)
    finally:
        if controller is not None:
            controller.send_signal(signal.SIGINT)  # Ctrl-C, as the section says
            assert controller.wait(30) == 0
    assert controller is not None
