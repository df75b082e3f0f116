"""An interrupted `factoryctl exec` (Ctrl-C, SIGTERM) still reports: what finished, what it stopped, what never ran.

Real processes on local-transport nodes: the console script in the background, signalled once the commands printed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
from pathlib import Path

import pytest
from process_groups import assert_group_gone, group_of, start
from reaping import reaped
from waiting import wait_for

from factoryctl.cli.render import fold
from factoryctl.errors import ExitCode

#: The first node to get here prints `quick` and exits; every other one prints, says it runs ($1/PID.pid), waits.
QUICK_THEN_WAIT = (
    'if mkdir "$1/quick" 2>/dev/null; then echo quick; exit 0; fi; '
    'echo hi; echo oops >&2; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; exec sleep 30'
)
#: Ignores SIGINT (noting it in $1/int) and SIGHUP: it runs on after the interrupt.
STUBBORN = (
    'trap \'echo int > "$1/int"\' INT; trap \'\' HUP; echo hi; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; '
    "while :; do sleep 0.1; done"
)


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text("name: lab\nnodes:\n  s[1-4]: {transport: local}\ngroups:\n  sims: 's[1-4]'\n")
    return str(path)


def started_groups(marks: Path, count: int) -> list[int]:
    """The process groups of the first `count` commands that said they run (waits for them)."""
    wait_for(lambda: len(list(marks.glob("*.pid"))) >= count)
    return [group_of(int(p.read_text())) for p in marks.glob("*.pid")]


def interrupted_exec(factory: str, marks: Path, sig: signal.Signals, *extra: str) -> tuple[int, str, str]:
    """`exec @sims --fanout 2 ... -- sh -c QUICK_THEN_WAIT`, sent `sig` once two commands wait: (status, out, err)."""
    proc = start("--config", factory, "exec", "@sims", "--fanout", "2", *extra, "--", "sh", "-c", QUICK_THEN_WAIT, "x",
                 str(marks), stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        groups = started_groups(marks, 2)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    for group in groups:
        assert_group_gone(group)
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(
    ("sig", "status", "last_words"),
    [(signal.SIGINT, ExitCode.INTERRUPTED, "interrupted"), (signal.SIGTERM, ExitCode.TERMINATED, "terminated")],
)
def test_an_interrupted_exec_still_prints_its_json(factory, tmp_path, sig, status, last_words):
    returncode, out, err = interrupted_exec(factory, tmp_path, sig, "-n", "-o", "json")
    assert returncode == status, err
    from factoryctl.cli.signals import STOPPED_HINTS

    assert err.endswith(f"factoryctl: {last_words}\nhint: {STOPPED_HINTS[status]}\n")
    doc = json.loads(out)
    [finished] = doc["items"]
    assert (finished["node"] in ("s1", "s2"), finished["exit_code"], finished["stdout"]) == (True, 0, "quick\n")
    stopped = [n for n in ("s1", "s2", "s3") if n != finished["node"]]
    assert doc["errors"] == [
        *(
            {
                "node": node,
                "error": "interrupted",
                "message": "command interrupted before it finished",
                "stdout": "hi\n",
                "stderr": "oops\n",
            }
            for node in stopped
        ),
        {"node": "s4", "error": "interrupted", "message": "not started: exec was interrupted"},
    ]
    assert f"factoryctl: {fold(stopped)} (2): command interrupted before it finished\n" in err
    assert "factoryctl: s4: not started: exec was interrupted\n" in err


def test_an_interrupted_exec_still_gathers_its_table(factory, tmp_path):
    returncode, out, err = interrupted_exec(factory, tmp_path, signal.SIGINT, "-n")
    assert returncode == ExitCode.INTERRUPTED, err
    quick = "s1" if out.split("\n")[1] == "s1 (1)" else "s2"
    stopped = [n for n in ("s1", "s2", "s3") if n != quick]
    rule = "-" * 15
    assert out == f"{rule}\n{quick} (1)\n{rule}\nquick\n{rule}\n{fold(stopped)} (2)\n{rule}\nhi\n"
    assert f"{fold(stopped)}: oops\n" in err
    assert "factoryctl: s4: not started: exec was interrupted\n" in err


def test_an_interrupted_exec_lines_reports_what_it_stopped(factory, tmp_path):
    returncode, out, err = interrupted_exec(factory, tmp_path, signal.SIGTERM, "-n", "--lines")
    assert returncode == ExitCode.TERMINATED, err
    [quick] = [line.split(":")[0] for line in out.splitlines() if line.endswith(": quick")]
    stopped = [n for n in ("s1", "s2", "s3") if n != quick]
    assert sorted(out.splitlines()) == sorted([f"{quick}: quick", *(f"{n}: hi" for n in stopped)])
    assert f"factoryctl: {fold(stopped)} (2): command interrupted before it finished\n" in err
    assert "factoryctl: s4: not started: exec was interrupted\n" in err


def test_a_command_that_ignores_the_interrupt_keeps_its_output(factory, tmp_path):
    """SIGINT and SIGHUP ignored: exec waits a moment, then reports it as still running, with what it printed."""
    argv = ["--config", factory, "exec", "s1", "-n", "-o", "json", "--", "sh", "-c", STUBBORN, "x", str(tmp_path)]
    proc = start(*argv, stdin=subprocess.DEVNULL)
    [group] = started_groups(tmp_path, 1)
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        [error] = json.loads(out)["errors"]
        assert error["error"] == "interrupted"
        assert error["message"].startswith("command interrupted, but still running")
        assert (error["stdout"], error["stderr"]) == ("hi\n", "")
        assert (tmp_path / "int").exists()  # it did get the SIGINT
    finally:
        os.killpg(group, signal.SIGKILL)


#: Says it runs; on SIGINT it prints `done` and exits 0, as a command that cleans up and succeeds (SIGHUP ignored).
FINISHES_ANYWAY = (
    'trap \'echo done; exit 0\' INT; trap \'\' HUP; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; '
    "while :; do sleep 0.05; done"
)


def test_a_command_that_finishes_as_usual_after_the_interrupt_is_an_item(factory, tmp_path):
    """A command that ended as usual (exit 0) after the interrupt was reported `interrupted`, its exit code lost."""
    argv = [
        "--config",
        factory,
        "exec",
        "s1",
        "-n",
        "-o",
        "json",
        "--",
        "sh",
        "-c",
        FINISHES_ANYWAY,
        "x",
        str(tmp_path),
    ]
    with reaped(start(*argv, stdin=subprocess.DEVNULL)) as proc:
        [group] = started_groups(tmp_path, 1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    doc = json.loads(out)
    assert doc["errors"] == []
    assert [(i["node"], i["exit_code"], i["stdout"]) for i in doc["items"]] == [("s1", 0, "done\n")]
    assert_group_gone(group)


def test_a_second_ctrl_c_while_the_result_is_printed_ends_exec(factory, tmp_path):
    """The result is being written to a reader that stopped reading: Ctrl-C again ends exec at once (130)."""
    big = 'head -c 3000000 /dev/zero | tr "\\0" x; echo $$ > "$1/$$.tmp" && mv "$1/$$.tmp" "$1/$$.pid"; exec sleep 30'
    argv = ["--config", factory, "exec", "s1", "-n", "-o", "json", "--", "sh", "-c", big, "x", str(tmp_path)]
    proc = start(*argv, stdin=subprocess.DEVNULL)
    try:
        [group] = started_groups(tmp_path, 1)
        proc.send_signal(signal.SIGINT)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready
        assert os.read(proc.stdout.fileno(), 100).startswith(b"{")  # printing has begun; 3 MB will not fit the pipe
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == ExitCode.INTERRUPTED
        assert_group_gone(group)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
