"""`factoryctl dash`: its options, TARGET checked before the screen changes, and Textual loaded only when it opens."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

FACTORY = """\
name: lab
nodes:
  gpu[01-04]: {transport: local, rack: a, sim: {profile: h100-sxm, gpus: 2}}
groups:
  rack-a: gpu[01-04]
"""


def test_help_names_target_and_read_only(cli) -> None:
    result = cli("dash", "--help")
    assert result.exit_code == 0
    assert "[target]" in result.stdout
    assert "--read-only" in result.stdout


def test_a_target_matching_nothing_is_a_usage_error(cli, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), "dash", "gpu[07-09]")
    assert result.exit_code == 2
    assert "matches no node" in result.stderr
    result = cli("--config", str(config), "dash", "@rack-z")
    assert result.exit_code == 2
    assert "unknown group" in result.stderr


def test_without_a_terminal_it_is_a_usage_error(cli, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    result = cli("--config", str(config), "dash")
    assert result.exit_code == 2
    assert "needs a terminal" in result.stderr
    assert "\x1b[" not in result.stdout


def test_without_a_config_it_says_how_to_get_one(cli) -> None:
    result = cli("dash")
    assert result.exit_code == 3
    assert "factoryctl init" in result.stderr


def test_the_cli_does_not_import_textual_until_the_dashboard_opens() -> None:
    code = "import sys, factoryctl.cli.app; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_headless_services_do_not_import_textual() -> None:
    code = (
        "import sys; import factoryctl.live.services_auto, factoryctl.live.services_polled, factoryctl.live.services_store,"
        " factoryctl.tui.view, factoryctl.live.grid;"
        " print('textual' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


ALT_SCREEN = b"\x1b[?1049h"


def _dashboard_in_a_pty(
    tmp_path: Path, stop: Callable[[int, int], None], when: bytes = b"gpu04", settle_s: float = 0.5
) -> tuple[bytes, int, bool]:
    """Run `factoryctl dash` on a pseudo-terminal, call `stop(pid, fd)` `settle_s` after its output showed `when`.

    Returns its output, its exit status and whether it left the terminal in cooked mode (line editing, echo).
    """
    import os
    import pty
    import select
    import signal
    import termios
    import time

    (tmp_path / "factory.yaml").write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ["TERM"] = "xterm-256color"
        os.execv(sys.executable, [sys.executable, "-m", "factoryctl", "-c", str(tmp_path / "factory.yaml"), "dash"])
    output = b""
    stopped = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            try:
                output += os.read(fd, 65536)
            except OSError:  # the child closed the terminal: it is gone
                break
        if not stopped and when in output:
            time.sleep(settle_s)
            stop(pid, fd)
            stopped, deadline = True, time.monotonic() + 15
    done, status = os.waitpid(pid, os.WNOHANG)
    while not done and time.monotonic() < deadline + 5:  # the terminal closes a moment before the process ends
        time.sleep(0.05)
        done, status = os.waitpid(pid, os.WNOHANG)
    if not done:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
        if stopped:
            raise AssertionError("the dashboard still ran 15 s after it was told to stop")
        raise AssertionError(f"the dashboard never showed {when!r} in 60 s, so it was never told to stop")
    lflag = termios.tcgetattr(fd)[3]  # the master reports the terminal's modes as the child left them
    os.close(fd)
    return output, os.waitstatus_to_exitcode(status), bool(lflag & termios.ICANON and lflag & termios.ECHO)


def test_sigterm_restores_the_terminal_then_exits_143(tmp_path: Path) -> None:
    import os
    import signal

    output, status, cooked = _dashboard_in_a_pty(tmp_path, lambda pid, fd: os.kill(pid, signal.SIGTERM))
    assert status == 143  # ExitCode.TERMINATED, not killed by the signal (-15)
    tail = output[output.rindex(ALT_SCREEN) :]
    assert b"\x1b[?1049l" in tail  # left the alternate screen
    assert b"\x1b[?1000l" in tail  # mouse reporting off
    assert cooked


def test_sigterm_as_the_screen_changes_still_restores_the_terminal(tmp_path: Path) -> None:
    """The early window: the alternate screen is on but the app is not mounted yet (nothing drawn)."""
    import os
    import signal

    output, status, cooked = _dashboard_in_a_pty(
        tmp_path, lambda pid, fd: os.kill(pid, signal.SIGTERM), when=ALT_SCREEN, settle_s=0.0
    )
    assert status == 143
    assert b"\x1b[?1049l" in output[output.rindex(ALT_SCREEN) :]
    assert cooked


def test_sigint_as_a_signal_quits_with_status_130(tmp_path: Path) -> None:
    """`kill -INT`, `timeout -s INT`: as Ctrl-C typed, exit 130 with the terminal restored."""
    import os
    import signal

    output, status, cooked = _dashboard_in_a_pty(tmp_path, lambda pid, fd: os.kill(pid, signal.SIGINT))
    assert status == 130
    assert b"\x1b[?1049l" in output[output.rindex(ALT_SCREEN) :]
    assert cooked


def test_sighup_restores_the_terminal_then_exits_129(tmp_path: Path) -> None:
    """A closed terminal window, `kill -HUP`: as SIGTERM, the terminal restored, exit 128 + SIGHUP."""
    import os
    import signal

    output, status, cooked = _dashboard_in_a_pty(tmp_path, lambda pid, fd: os.kill(pid, signal.SIGHUP))
    assert status == 129  # not killed by the signal (-1)
    tail = output[output.rindex(ALT_SCREEN) :]
    assert b"\x1b[?1049l" in tail  # left the alternate screen
    assert b"\x1b[?1000l" in tail  # mouse reporting off
    assert b"\x1b[?7h" in tail  # autowrap back on
    assert cooked


def test_ctrl_c_quits_with_status_130(tmp_path: Path) -> None:
    import os

    output, status, cooked = _dashboard_in_a_pty(tmp_path, lambda pid, fd: os.write(fd, b"\x03"))
    assert status == 130
    assert cooked
    assert b"\x1b[?1049l" in output[output.rindex(ALT_SCREEN) :]


def _dash_with_streams(tmp_path: Path, stdin_tty: bool, stderr_tty: bool) -> tuple[int, str]:
    """Run `factoryctl dash` with stdout on a pseudo-terminal, stdin and stderr each on it or not.

    Returns the exit status and what the process wrote to the stream that is not a terminal (or to the terminal).
    """
    import os
    import pty

    (tmp_path / "factory.yaml").write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    master, slave = pty.openpty()
    err = tmp_path / "err.log"
    with open(os.devnull, "rb") as devnull, err.open("wb") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "factoryctl", "-c", str(tmp_path / "factory.yaml"), "dash"],
            stdin=slave if stdin_tty else devnull,
            stdout=slave,
            stderr=slave if stderr_tty else err_file,
            env={**os.environ, "TERM": "xterm-256color"},
            start_new_session=True,  # its own process group: a dashboard started by mistake is ended with its agents
        )
        os.close(slave)
        try:
            status = proc.wait(timeout=30)  # the dashboard would run until told to quit: it must not start
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
            raise AssertionError("the dashboard started without a terminal on every stream") from None
        finally:
            output = b""
            while True:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            os.close(master)
    return status, err.read_text() + output.decode(errors="replace")


def test_stdin_that_is_not_a_terminal_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """`dash </dev/null` opened the screen, but no key worked: only Ctrl-C ended it."""
    status, said = _dash_with_streams(tmp_path, stdin_tty=False, stderr_tty=True)
    assert status == 2
    assert "standard input is not one" in said
    assert "\x1b[?1049h" not in said  # the screen never changed


def test_stderr_that_is_not_a_terminal_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    """`dash 2>err.log` filled the log with escape codes (Textual draws on stderr); `2>/dev/null` showed nothing."""
    status, said = _dash_with_streams(tmp_path, stdin_tty=True, stderr_tty=False)
    assert status == 2
    assert "standard error is not one" in said
    assert "\x1b[?1049h" not in said
