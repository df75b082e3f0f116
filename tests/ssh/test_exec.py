"""`factoryctl exec` end to end through the CLI against a real sshd."""

from __future__ import annotations

import pytest
from cli_process import run_cli_text
from silent_listener import silent_listener
from sshd_fixture import free_port


@pytest.fixture
def factory(tmp_path, sshd, known_hosts):
    def write(extra_nodes: str = "") -> str:
        nodes = f"  n[01-04]: {{host: 127.0.0.1}}\n{extra_nodes}\n"
        return sshd.write_factory(tmp_path / "factory.yaml", known_hosts, nodes)

    return write


def test_identical_outputs_are_gathered(cli, factory):
    r = cli("--config", factory(), "exec", "all", "--", "echo", "hi")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == "---------------\nn[01-04] (4)\n---------------\nhi\n"


def test_json_output_and_highest_exit_code(cli, factory):
    script = 'echo "$1"; exit 3'
    r = cli("--config", factory(), "exec", "n[01-02]", "-o", "json", "--", "sh", "-c", script, "sh", "a b")
    assert r.exit_code == 3
    doc = r.json()
    assert doc["errors"] == []
    assert [(i["node"], i["exit_code"], i["stdout"]) for i in doc["items"]] == [
        ("n01", 3, "a b\n"),
        ("n02", 3, "a b\n"),
    ]
    assert "n[01-02] (2): exited with exit code 3" in r.stderr  # and the document says it too


def test_quoting_survives_the_cli(cli, factory):
    nasty = 'it\'s "quoted"; $(echo no) `no`\nsecond line'
    r = cli("--config", factory(), "exec", "n01", "-o", "json", "--", "printf", "%s", nasty)
    assert r.json()["items"][0]["stdout"] == nasty


def test_unreachable_node_wins_exit_4_and_others_still_answer(cli, factory):
    config = factory(f"  dead: {{host: 127.0.0.1, port: {free_port()}}}")
    r = cli("--config", config, "exec", "all", "-o", "json", "--", "sh", "-c", "exit 5")
    assert r.exit_code == 4
    doc = r.json()
    assert len(doc["items"]) == 4
    assert doc["errors"] == [{"node": "dead", "error": "refused", "message": doc["errors"][0]["message"]}]
    assert "dead:" in r.stderr


def test_timeout_gives_124(cli, factory):
    r = cli("--config", factory(), "exec", "n01", "--timeout", "1", "--", "sleep", "20")
    assert r.exit_code == 124
    assert "n01" in r.stderr


def test_unknown_host_key_gives_4_with_trust_hint(cli, factory, known_hosts):
    known_hosts.write_text("")
    r = cli("--config", factory(), "exec", "n01", "--", "true")
    assert r.exit_code == 4
    assert "factoryctl nodes trust" in r.stderr


def test_stderr_and_failures_are_reported(cli, factory):
    r = cli("--config", factory(), "exec", "n[01-02]", "--", "sh", "-c", "echo oops >&2; exit 2")
    assert r.exit_code == 2
    assert "n[01-02]: oops" in r.stderr
    assert "n[01-02] (2): exited with exit code 2" in r.stderr


def test_lines_mode(cli, factory):
    r = cli("--config", factory(), "exec", "n[01-02]", "--lines", "--", "echo", "x")
    assert sorted(r.stdout.splitlines()) == ["n01: x", "n02: x"]  # in the order they arrive (streamed)


def test_sshd_killed_mid_command_is_exit_4(cli, tmp_path, sshd_factory):
    import threading
    import time

    server = sshd_factory()
    kh = server.write_known_hosts(tmp_path / "kh2")
    path = server.write_factory(tmp_path / "dying.yaml", kh, "  d[1-2]: {host: 127.0.0.1}\n")
    marks = tmp_path / "marks"
    marks.mkdir()

    def kill_when_both_run() -> None:
        deadline = time.monotonic() + 60
        while len(list(marks.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()

    threading.Thread(target=kill_when_both_run, daemon=True).start()
    script = 'touch "$1/$(mktemp -u XXXXXX)"; sleep 60'
    r = cli("--config", path, "exec", "all", "-o", "json", "--", "sh", "-c", script, "sh", str(marks))
    assert r.exit_code == 4
    assert {e["node"]: e["error"] for e in r.json()["errors"]} == {"d1": "refused", "d2": "refused"}
    assert "connection lost" in r.json()["errors"][0]["message"]


def test_no_paramiko_traceback_on_stderr(tmp_path, isolated_home):
    """A real process (pytest's log capture would hide logging's last-resort output in-process)."""
    config = tmp_path / "mute.yaml"
    with silent_listener() as port:
        config.write_text(
            f"name: t\nssh: {{connect_timeout_s: 1}}\nnodes:\n  mute: {{host: 127.0.0.1, port: {port}}}\n"
        )
        done = run_cli_text("--config", str(config), "exec", "mute", "--", "true", timeout=60)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert "sent no SSH banner" in done.stderr
