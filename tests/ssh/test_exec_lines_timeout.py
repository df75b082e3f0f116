"""`exec --lines --timeout` holds when output comes faster than exec prints it, or than its reader reads it.

On SSH nodes the thread that reads a command's output also enforces its deadline: reading everything that had
arrived before looking at the clock never ended under `yes` (393 s for `-t 1`), and a reader that does not read yet
(`| (sleep 60; cat)`) held that thread, and so the kill, in a write. Each test runs on local and SSH nodes.
"""

from __future__ import annotations

import subprocess
import time

from cli_process import CLI_ARGV
from exec_fleets import Fleet, fleet  # noqa: F401 - the fixture
from process_groups import assert_group_gone, group_of, start


def test_a_command_printing_without_end_is_killed_at_its_timeout(fleet: Fleet):  # noqa: F811 - the fixture
    started = time.monotonic()
    done = subprocess.run(
        [*CLI_ARGV, "--config", fleet.config, "exec", "all", "-t", "1", "-L", "--", "yes"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
        check=False,
    )
    assert done.returncode == 124, done.stderr
    assert time.monotonic() - started < 20
    assert "n[01-02] (2): command did not finish within 1 s and was killed" in done.stderr.decode()


def test_a_reader_that_does_not_read_yet_does_not_hold_the_kill_up(fleet: Fleet, tmp_path):  # noqa: F811
    """`exec -t 1 -L -- yes | (sleep 60; cat)`: the command is killed about 1 s in, long before anything is read."""
    pidfile = tmp_path / "pid"
    script = f"echo $$ > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}; exec yes"
    proc = start(
        "--config", fleet.config, "exec", "n01", "-t", "1", "-L", "--", "sh", "-c", script, stdin=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        group = group_of(int(pidfile.read_text()))  # sshd runs on this machine: the "remote" command's group is here
        assert_group_gone(group, within=6)  # 1 s, a kill, and room for a loaded machine; nothing read until then
    finally:
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 124, err
    assert "n01: command did not finish within 1 s and was killed" in err.decode()
