"""What exec says on stderr: which nodes failed even when stdout went away, and when a word was meant for a shell.

`factoryctl exec ... | head -2` still says which nodes failed, on stderr, before it exits 141.

The nodes' errors and the non-zero exits were written after the gathered output: a reader of stdout that went away
(`| head`) stopped exec with BrokenPipeError before them, so `closed` (unreachable) went unsaid and the exit status
141 hid it. And `exec all -- 'uptime; df -h'` (pdsh's habit: the whole line one word) failed 127 everywhere with
`uptime; df -h: command not found` and no word on why: the command is argv, by design (docs/ssh.md); a hint now says
to run it through sh. The real console script runs with its stdout a pipe whose reader is gone before anything is
written; two local nodes run the command, and `closed` is an SSH node on a port nothing listens on (refused at once).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cli_process import CLI_ARGV
from waiting import wait_for

BROKEN_PIPE_EXIT = 141
NODES = "  n[01-02]: {transport: local}\n  closed: {host: 127.0.0.1, port: 1}\n"


def _exec_into_closed_pipe(tmp_path: Path, *args: str, nodes: str = NODES) -> tuple[int, str]:
    """exec's status and stderr on `nodes` (all of them), its stdout a pipe nobody reads any more."""
    config = tmp_path / "factory.yaml"
    config.write_text(f"name: lab\nssh: {{connect_timeout_s: 10}}\nnodes:\n{nodes}")
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head` that has gone: the first write meets EPIPE
    try:
        proc = subprocess.run(
            [*CLI_ARGV, "--config", str(config), "exec", "all", *args],
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    return proc.returncode, proc.stderr.decode()


@pytest.mark.parametrize("options", [(), ("-o", "json"), ("--lines",)])
def test_the_failed_nodes_are_said_when_stdout_went_away(tmp_path, options):
    code, err = _exec_into_closed_pipe(tmp_path, *options, "--", "sh", "-c", "seq 1 3; exit 3")
    assert code == BROKEN_PIPE_EXIT, err
    assert "factoryctl: closed: " in err  # refused: unreachable, said
    assert "factoryctl: n[01-02] (2): exited with exit code 3\n" in err
    assert "Traceback" not in err


def test_the_failed_nodes_are_said_when_stdout_went_away_under_lines_mid_run(tmp_path):
    # one node at a time, in factory.yaml's order: `closed` is refused before n01's first line meets the closed
    # pipe and stops exec, its command still running
    argv = ("--lines", "-f", "1", "--", "sh", "-c", "seq 1 3; exec sleep 30.517")
    nodes = "  closed: {host: 127.0.0.1, port: 1}\n  n01: {transport: local}\n"
    code, err = _exec_into_closed_pipe(tmp_path, *argv, nodes=nodes)
    assert code == BROKEN_PIPE_EXIT, err
    assert "factoryctl: closed: " in err
    assert "Traceback" not in err
    assert "exited with" not in err  # n01's command ended by exec's own interrupt: no failure of the node
    wait_for(lambda: not _running("sleep 30.517"), timeout=10, what="the command exec started to end with it")


def _running(command_line: str) -> list[int]:
    """The pids whose command line is `command_line` (nothing exec started may run on after it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").strip().decode(errors="replace")
            except OSError:
                continue
            if line == command_line:
                found.append(int(entry.name))
    return found


def _exec(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n[01-02]: {transport: local}\n")
    return subprocess.run(
        [*CLI_ARGV, "--config", str(config), "exec", "all", "--", *command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )


SHELL_HINT = (
    "hint: the command's words are run as given, not read by a shell; to have one read `;`, `|` or spaces, run it"
    " through sh: `factoryctl exec all -- sh -c 'uptime; df -h'`.\n"
)


def test_one_word_meant_for_a_shell_that_no_node_found_gets_the_hint(tmp_path):
    done = _exec(tmp_path, "uptime; df -h")  # pdsh's habit: the whole line one word
    assert done.returncode == 127
    assert done.stderr.decode().endswith(SHELL_HINT)


@pytest.mark.parametrize(
    "command", [("no-such-command-here",), ("sh", "-c", "exit 127; uptime"), ("sh", "-c", "uptime; df -h")]
)
def test_no_shell_hint_for_a_plain_missing_command_or_one_that_ran(tmp_path, command):
    done = _exec(tmp_path, *command)
    assert "through sh" not in done.stderr.decode()
