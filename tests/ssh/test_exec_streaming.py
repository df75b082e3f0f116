"""`factoryctl exec --lines` streams lines as they come, and output before a timeout is kept, on local and SSH nodes
alike (`fleet`: each test runs on both); output before a lost connection is kept too (shown, and on the node's JSON
`errors` entry) with the node's error and exit code unchanged."""

from __future__ import annotations

import os
import threading
import time

import pytest
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture
from exec_lines import StreamedExec
from process_groups import assert_group_gone, group_of

from factoryctl.transport.base import CappedOutput

#: Prints a line, then waits for the file $1 before printing the next: its first line can only be seen streamed.
GATED = 'echo "first $0"; while [ ! -e "$1" ]; do sleep 0.05; done; echo "second $0"'


def test_lines_arrive_while_the_commands_run(fleet: Fleet, tmp_path):  # noqa: F811 - the fixture, as a parameter
    gate = tmp_path / "gate"
    run = StreamedExec(
        "--config", fleet.config, "exec", "all", "--lines", "-t", "60", "--", "sh", "-c", GATED, "x", str(gate)
    )
    try:
        assert sorted(run.lines(2)) == ["n01: first x", "n02: first x"]  # before either command could end
        assert run.proc.poll() is None
    finally:
        gate.touch()
    assert sorted(run.lines(2)) == ["n01: second x", "n02: second x"]
    assert run.finish() == (0, "")


def test_lines_streams_stdin_fed_commands(fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    """The stdin broadcast keeps working under --lines: every node's `cat` echoes the piped line at once."""
    read_end, write_end = os.pipe()
    try:
        run = StreamedExec("--config", fleet.config, "exec", "all", "--lines", "-t", "60", "--", "cat", stdin=read_end)
        os.write(write_end, b"hello\n")
        assert sorted(run.lines(2)) == ["n01: hello", "n02: hello"]  # the input has not even ended
    finally:
        os.close(write_end)
        os.close(read_end)
    assert run.finish() == (0, "")


def test_lines_never_interleaves_half_lines(cli, fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    script = 'printf "%s" "begin-$0-"; sleep 0.3; echo "end-$0"; echo "err-$0" >&2; printf "%s" "last-$0"'
    r = cli("--config", fleet.config, "exec", "all", "--lines", "--", "sh", "-c", script, "a")
    assert r.exit_code == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["n01: begin-a-end-a", "n01: last-a", "n02: begin-a-end-a", "n02: last-a"]
    assert sorted(r.stderr.splitlines()) == ["n01: err-a", "n02: err-a"]


def test_lines_reports_non_zero_exits(cli, fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    r = cli("--config", fleet.config, "exec", "all", "--lines", "--", "sh", "-c", "echo out; exit 3")
    assert r.exit_code == 3
    assert sorted(r.stdout.splitlines()) == ["n01: out", "n02: out"]
    assert r.stderr.splitlines()[-1] == "factoryctl: n[01-02] (2): exited with exit code 3"


def test_output_before_a_timeout_is_kept(cli, fleet: Fleet):  # noqa: F811 - the fixture, as a parameter
    script = "echo partial; echo perr >&2; sleep 30"
    r = cli("--config", fleet.config, "exec", "n01", "--timeout", "2", "-o", "json", "--", "sh", "-c", script)
    assert r.exit_code == 124
    doc = r.json()
    assert doc["items"] == []
    assert [(e["node"], e["error"], e["stdout"], e["stderr"]) for e in doc["errors"]] == [
        ("n01", "timeout", "partial\n", "perr\n")
    ]
    table = cli("--config", fleet.config, "exec", "all", "--timeout", "2", "--", "sh", "-c", script)
    assert table.exit_code == 124
    assert table.stdout == "---------------\nn[01-02] (2)\n---------------\npartial\n"
    assert "n[01-02]: perr" in table.stderr
    assert "did not finish within" in table.stderr
    assert "exited with exit code" not in table.stderr


def test_a_reader_that_goes_away_stops_commands_with_sigint_ignored(fleet: Fleet, tmp_path):  # noqa: F811
    """`( exec --lines ... ) | head -1 &` in a script (SIGINT ignored): exec exits 141 at once, the command ends."""
    pidfile = tmp_path / "pid"
    endless = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; while true; do echo tick; sleep 0.1; done"
    argv = ["--config", fleet.config, "exec", "n01", "--lines", "-t", "60", "--", "sh", "-c", endless]
    run = StreamedExec(*argv, ignore_sigint=True)
    assert run.lines(1) == ["n01: tick"]
    group = group_of(int(pidfile.read_text()))  # sshd runs on this machine: the "remote" command's group is here
    assert run.proc.stdout is not None
    run.proc.stdout.close()
    started = time.monotonic()
    assert run.proc.wait(timeout=30) == 141
    assert time.monotonic() - started < 10  # not the 60 s timeout
    assert_group_gone(group, within=fleet.gone_within)


def when_both_received(monkeypatch, text: bytes) -> threading.Event:
    """An event set once two commands' output, as this process received it, contains `text` (no guessing at time)."""
    holding: set[int] = set()
    both = threading.Event()
    add = CappedOutput.add

    def watching_add(self: CappedOutput, data: bytes) -> None:
        add(self, data)
        if self.number == 1 and text in self.value():
            holding.add(id(self))
            if len(holding) >= 2:
                both.set()

    monkeypatch.setattr(CappedOutput, "add", watching_add)
    return both


@pytest.mark.parametrize("output", ["json", "table"])
def test_output_before_the_connection_was_lost_is_kept(cli, tmp_path, sshd_factory, monkeypatch, output):
    server = sshd_factory()
    kh = server.write_known_hosts(tmp_path / "kh2")
    path = server.write_factory(tmp_path / "dying.yaml", kh, "  d[1-2]: {host: 127.0.0.1}\n")
    received = when_both_received(monkeypatch, b"started\n")

    def kill_when_both_received() -> None:
        received.wait(60)
        server.kill()

    threading.Thread(target=kill_when_both_received, daemon=True).start()
    r = cli("--config", path, "exec", "all", "-o", output, "-t", "90", "--", "sh", "-c", "echo started; sleep 60")
    assert received.is_set()
    assert r.exit_code == 4
    if output == "json":
        assert [(e["node"], e["error"], e["stdout"]) for e in r.json()["errors"]] == [
            ("d1", "refused", "started\n"),
            ("d2", "refused", "started\n"),
        ]
    else:
        assert r.stdout == "---------------\nd[1-2] (2)\n---------------\nstarted\n"
        assert "connection lost" in r.stderr
