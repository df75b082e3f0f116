"""A SIGHUP while `controller run` or `metrics serve` starts is a reload once it runs, never a stop with exit 129.

docs/controller.md's unit reloads with `ExecReload=/bin/kill -HUP $MAINPID` (Type=exec): `systemctl reload` just
after `start` killed either daemon with `factoryctl: hung up` (129) and the advice to run it under nohup or tmux,
because the CLI's SIGHUP-is-a-stop handler was in force until the daemon's own reload handler took over.

Each daemon runs in a real process that sends itself SIGHUP the moment the CLI installs its first SIGHUP handler
(`LAUNCHER`), so the signal lands before the daemon's own one, the window in question; or the moment the console
script starts importing the CLI (`EARLY_LAUNCHER`), before any handler of the CLI's exists: that killed it too.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from reaping import reaped
from sshd_fixture import free_port

from factoryctl.cli.daemon_hangup import runs_as_daemon

#: The console script, with a thread that sends the process SIGHUP as soon as a SIGHUP handler is in place.
LAUNCHER = """
import os, signal, sys, threading, time
def hang_up_once_handled():
    while signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, None):
        time.sleep(0.0005)
    os.kill(os.getpid(), signal.SIGHUP)
threading.Thread(target=hang_up_once_handled, daemon=True).start()
from factoryctl.cli.app import main
main()
"""


#: The console script (`cli.entry`), sent SIGHUP as it starts to import the CLI (typer, click: a tenth of a second).
EARLY_LAUNCHER = """
import os, signal, sys
class HangUpOnImport:
    def find_spec(self, name, path=None, target=None):
        if name == "factoryctl.cli.app":
            sys.meta_path.remove(self)
            signal.raise_signal(signal.SIGHUP)
        return None
sys.meta_path.insert(0, HangUpOnImport())
from factoryctl.cli.entry import main
main()
"""


def started(tmp_path: Path, *command: str, launcher: str = LAUNCHER) -> subprocess.Popen[bytes]:
    config = tmp_path / "factory.yaml"
    config.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\ncontroller: {{interval_s: 1}}\n"
        "nodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
    )
    argv = [sys.executable, "-c", launcher, "--config", str(config), *command]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stderr_until(proc: subprocess.Popen[bytes], wanted: str, within: float = 60.0) -> str:
    """Its stderr up to the read holding `wanted` (or to its end: the process exited).

    Read straight from the pipe (`os.read`), never with `readline`: that read every line already in the pipe into
    its buffer and returned the first, and `select`, which sees the pipe only, never woke for the rest. Under load
    `serving ...` and `reloaded ...` (a millisecond apart) were read together, and the test waited 60 s for a line
    already read (`test_lines_that_came_together_are_all_seen`).
    """
    import os
    import select
    import time

    assert proc.stderr is not None
    pipe = proc.stderr.fileno()
    seen, deadline = b"", time.monotonic() + within
    while wanted.encode() not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([pipe], [], [], 1.0)
        if ready:
            chunk = os.read(pipe, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_lines_that_came_together_are_all_seen() -> None:
    # the CI failure: both lines in the pipe when the test read it, the second never seen (the product had reloaded)
    script = "import sys, time; sys.stderr.write('serving\\nreloaded x\\n'); sys.stderr.flush(); time.sleep(600)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with reaped(proc):
        assert "reloaded x" in stderr_until(proc, "reloaded ")


def test_controller_reloads_on_a_sighup_while_it_starts(tmp_path: Path) -> None:
    with reaped(started(tmp_path, "controller", "run")) as proc:
        said = stderr_until(proc, "reloaded ")
        assert proc.poll() is None, said  # it died of it (129) before
        assert "received SIGHUP while starting: reloading once started" in said
        assert f"reloaded {tmp_path / 'factory.yaml'}: no node changes" in said
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0, said + rest.decode()
    assert "hung up" not in said + rest.decode()


def test_a_sighup_while_the_console_script_imports_the_cli_is_a_reload(tmp_path: Path) -> None:
    with reaped(started(tmp_path, "controller", "run", launcher=EARLY_LAUNCHER)) as proc:
        said = stderr_until(proc, "reloaded ")
        assert proc.poll() is None, said  # SIGHUP's default action killed it before
        assert "received SIGHUP while starting: reloading once started" in said
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 0, said + rest.decode()


def test_an_early_sighup_still_ends_a_command_that_is_no_daemon(tmp_path: Path) -> None:
    with reaped(started(tmp_path, "controller", "status", launcher=EARLY_LAUNCHER)) as proc:
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGHUP, err.decode()  # as before: only the daemons hold it


def test_metrics_serve_reloads_on_a_sighup_while_it_starts(tmp_path: Path) -> None:
    with reaped(started(tmp_path, "metrics", "serve", "--port", str(free_port()))) as proc:
        said = stderr_until(proc, "reloaded ")
        assert proc.poll() is None, said
        assert f"reloaded {tmp_path / 'factory.yaml'}: 1 node" in said
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    assert proc.returncode == 130, said + rest.decode()  # its Ctrl-C, as ever
    assert "hung up" not in said + rest.decode()


@pytest.mark.parametrize(
    ("args", "daemon"),
    [
        (["controller", "run"], True),
        (["-c", "f.yaml", "-q", "controller", "run", "--log-level", "debug"], True),
        (["--config", "run", "metrics", "serve", "--port", "0"], True),
        (["-qc", "controller", "metrics", "serve"], True),
        (["--config=f.yaml", "metrics", "serve"], True),
        (["controller", "status"], False),
        (["-c", "controller", "run"], False),  # `controller` is the file, `run` no noun
        (["exec", "all", "--", "controller", "run"], False),
        (["metrics"], False),
    ],
)
def test_the_daemons_are_told_from_their_first_two_words(args: list[str], daemon: bool) -> None:
    assert runs_as_daemon(args) is daemon
