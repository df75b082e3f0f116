"""`nodes trust` and `nodes check` through the CLI against a real sshd."""

from __future__ import annotations

import pytest
from sshd_fixture import free_port

from factoryctl.transport.known_hosts import KnownHosts


@pytest.fixture
def factory(tmp_path, sshd):
    kh = tmp_path / "kh"

    def write(extra: str = "") -> str:
        nodes = f"  n[1-2]: {{host: 127.0.0.1}}\n  sim1: {{host: 127.0.0.1, sim: h100-sxm, gpus: 2}}\n{extra}\n"
        return sshd.write_factory(tmp_path / "factory.yaml", kh, nodes)

    write.known_hosts = kh
    return write


def _fingerprint(sshd) -> str:
    import base64

    from factoryctl.transport.known_hosts import fingerprint

    return fingerprint(base64.b64decode(sshd.host_key.with_suffix(".pub").read_text().split()[1]))


def test_trust_shows_fingerprint_and_records_only_when_confirmed(cli, factory, sshd):
    config = factory()
    r = cli("--config", config, "nodes", "trust", "n1", stdin="n\n", tty=True)
    assert r.exit_code == 4
    assert _fingerprint(sshd) in r.stdout
    assert not factory.known_hosts.exists()
    r = cli("--config", config, "nodes", "trust", "n1")  # no terminal, no answer: nothing recorded
    assert r.exit_code == 4
    assert not factory.known_hosts.exists()
    r = cli("--config", config, "nodes", "trust", "n1", stdin="y\n")  # piped, as `yes |` would: still no
    assert r.exit_code == 4
    assert "pass --yes" in r.stderr
    assert not factory.known_hosts.exists()
    r = cli("--config", config, "nodes", "trust", "n1", stdin="y\n", tty=True)
    assert r.exit_code == 0, r.stderr
    assert factory.known_hosts.read_text().startswith(f"[127.0.0.1]:{sshd.port} ssh-ed25519 ")
    r = cli("--config", config, "exec", "n1", "--", "true")
    assert r.exit_code == 0, r.stderr


def test_trust_yes_for_scripts_and_json(cli, factory):
    r = cli("--config", factory(), "nodes", "trust", "all", "--yes", "-o", "json")
    assert r.exit_code == 0, r.stderr
    doc = r.json()
    assert [(i["node"], i["status"], i["recorded"]) for i in doc["items"]] == [
        ("n1", "trusted", True),
        ("n2", "trusted", True),
        ("sim1", "trusted", True),
    ]
    r = cli("--config", factory(), "nodes", "trust", "all", "-o", "json")
    assert {i["status"] for i in r.json()["items"]} == {"known"}
    assert len(KnownHosts(factory.known_hosts).entries) == 1  # one sshd, recorded once per [host]:port


def test_changed_key_needs_replace(cli, factory, sshd, tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "old")], check=True)
    kind, blob = (tmp_path / "old.pub").read_text().split()[:2]
    factory.known_hosts.write_text(f"# keep me\n[127.0.0.1]:{sshd.port} {kind} {blob}\n")
    config = factory()
    r = cli("--config", config, "nodes", "trust", "n1", "--yes")
    assert r.exit_code == 4
    assert "CHANGED" in r.stderr
    r = cli("--config", config, "nodes", "trust", "n1", "--yes", "--replace")
    assert r.exit_code == 0, r.stderr
    text = factory.known_hosts.read_text()
    assert blob not in text
    assert "# keep me" in text
    assert cli("--config", config, "exec", "n1", "--", "true").exit_code == 0


def test_revoked_key_is_never_recorded(cli, factory, sshd):
    kind, blob = sshd.host_key.with_suffix(".pub").read_text().split()[:2]
    factory.known_hosts.write_text(f"@revoked * {kind} {blob}\n")
    r = cli("--config", factory(), "nodes", "trust", "n1", "--yes", "--replace")
    assert r.exit_code == 4
    assert "REVOKED" in r.stderr
    assert factory.known_hosts.read_text() == f"@revoked * {kind} {blob}\n"


def test_check_walks_every_step(cli, factory, sshd):
    factory.known_hosts.write_text(sshd.host_key_line + "\n")
    r = cli("--config", factory(), "nodes", "check", "sim1", "-o", "json", "--timeout", "60")
    assert r.exit_code == 0, r.stdout + r.stderr
    steps = r.json()["items"][0]["steps"]
    assert [(s["step"], s["status"]) for s in steps] == [
        (name, "ok") for name in ("dns", "tcp", "banner", "host_key", "auth", "python", "agent", "driver", "nvml")
    ]


def test_check_names_the_failing_step_and_the_fix(cli, factory):
    port = free_port()  # nothing listens there
    r = cli("--config", factory(f"  dead: {{host: 127.0.0.1, port: {port}}}"), "nodes", "check", "dead,n1")
    assert r.exit_code == 4
    lines = r.stdout.splitlines()
    assert any(line.split()[:3] == ["dead", "tcp", "fail"] for line in lines)
    assert any(line.split()[:3] == ["n1", "host_key", "fail"] for line in lines)
    assert "n1: host_key: fix:" in r.stdout
    assert "factoryctl nodes trust" in r.stdout
