"""The dashboard fits the terminal it is in: Ctrl-Z suspends it, a non-UTF-8 locale or TERM=dumb is refused, and a
short screen keeps node rows before the power graph.

A terminals review found: Ctrl-Z did nothing (raw mode turns the terminal's own Ctrl-Z off) and what was typed next
went to the dashboard as keys (a `d` opened the drain dialog); under LANG=en_US.ISO-8859-1 every bar and box line
was a `?`; TERM=dumb got the full-screen escape codes; at 40x10 the power graph stayed and no node row showed.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import sys
import time
from pathlib import Path

from factory_data import FrozenServices
from pilot_helpers import first_snapshot, plain, screen_text
from textual.widgets import Static

from factoryctl.tui.app import make_app
from factoryctl.tui.screens.help import HelpScreen

FACTORY = """\
name: lab
nodes:
  gpu[01-04]: {transport: local, rack: a, sim: {profile: h100-sxm, gpus: 2}}
"""
ALT_SCREEN_ON, ALT_SCREEN_OFF = b"\x1b[?1049h", b"\x1b[?1049l"
#: A bound on every wait for the dashboard (a loaded machine starts Python slowly), not an assertion on its speed.
WAIT_S = 60.0


class DashboardOnPty:
    """`factoryctl dash` on a pseudo-terminal that is its controlling terminal, as a shell would start it."""

    def __init__(self, tmp_path: Path) -> None:
        import pty

        config = tmp_path / "factory.yaml"
        config.write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.environ["TERM"] = "xterm-256color"
            os.execv(sys.executable, [sys.executable, "-m", "factoryctl", "-c", str(config), "dash"])
        self.output = b""

    def read_until(self, wanted: bytes, after: int = 0) -> bool:
        """Read the terminal until `wanted` shows past offset `after` (True), or WAIT_S pass (False)."""
        deadline = time.monotonic() + WAIT_S
        while wanted not in self.output[after:] and time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    break
        return wanted in self.output[after:]

    def wait(self, options: int) -> int | None:
        """The raw wait status once `waitpid(options)` reports one (within WAIT_S), else None."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            done, status = os.waitpid(self.pid, options | os.WNOHANG)
            if done:
                return status
            if select.select([self.fd], [], [], 0.05)[0]:
                with contextlib.suppress(OSError):  # the terminal closed as the process ended
                    self.output += os.read(self.fd, 65536)
        return None

    def kill(self) -> None:
        """End it whatever state it is in (a stopped process gets SIGKILL too)."""
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def test_ctrl_z_suspends_with_the_terminal_restored_and_fg_resumes(tmp_path: Path) -> None:
    """Ctrl-Z stops the process as in any full-screen program; SIGCONT (the shell's `fg`) draws it again."""
    import termios

    dash = DashboardOnPty(tmp_path)
    try:
        assert dash.read_until(b"gpu04"), dash.output[-500:]
        os.write(dash.fd, b"\x1a")
        status = dash.wait(os.WUNTRACED)
        assert status is not None, "Ctrl-Z did not stop the dashboard"
        assert os.WIFSTOPPED(status), status
        tail = dash.output[dash.output.rindex(ALT_SCREEN_ON) :]
        assert ALT_SCREEN_OFF in tail  # the shell gets its screen back
        lflag = termios.tcgetattr(dash.fd)[3]
        assert lflag & termios.ICANON  # and cooked mode, for `fg` to be typed
        assert lflag & termios.ECHO
        resumed_from = len(dash.output)
        os.kill(dash.pid, signal.SIGCONT)
        assert dash.read_until(ALT_SCREEN_ON, after=resumed_from), "SIGCONT did not draw the dashboard again"
        assert dash.read_until(b"gpu04", after=resumed_from)
        os.write(dash.fd, b"q")
        status = dash.wait(0)
        assert status is not None
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        dash.kill()


async def test_the_key_list_names_ctrl_z() -> None:
    app = make_app(FrozenServices())
    async with app.run_test(size=(100, 50)) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = plain(app.screen.query_one("#keys", Static).content, width=160)
    assert "Ctrl-Z" in text
    assert "suspend to the shell" in text


def _start_refused(tmp_path: Path, command: str, env: dict[str, str]) -> tuple[int, str]:
    """`factoryctl COMMAND` with stdin, stdout and stderr on a pseudo-terminal, `env` added; its status and output.

    The dashboard must not start: one that still runs after WAIT_S is ended (its process group) and fails the test.
    """
    import subprocess

    (tmp_path / "factory.yaml").write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    master, slave = os.openpty()
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONIOENCODING", "PYTHONUTF8", "LC_ALL", "LANG")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "factoryctl", "-c", str(tmp_path / "factory.yaml"), command],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**base, "TERM": "xterm-256color", **env},
        start_new_session=True,  # its own process group: a dashboard started by mistake is ended with its agents
    )
    os.close(slave)
    output = b""
    deadline = time.monotonic() + WAIT_S
    while proc.poll() is None and time.monotonic() < deadline:
        if select.select([master], [], [], 0.1)[0]:
            try:
                output += os.read(master, 65536)
            except OSError:  # every copy of the terminal closed: the process is ending
                break
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)
        raise AssertionError(f"`{command}` started the dashboard under {env}") from None
    while select.select([master], [], [], 0.1)[0]:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.returncode, output.decode("ascii", errors="replace")


def test_term_dumb_is_refused_before_the_screen_changes(tmp_path: Path) -> None:
    """Emacs's M-x shell and M-x compile set TERM=dumb: the full screen was escape codes there."""
    for command in ("dash", "demo"):
        status, said = _start_refused(tmp_path, command, {"TERM": "dumb"})
        assert status == 2, (command, said)  # a usage error, as a dashboard without a terminal
        assert "TERM=dumb" in said
        assert "hint: " in said
        assert "\x1b[?1049h" not in said


def test_an_encoding_without_block_characters_is_refused_naming_it(tmp_path: Path) -> None:
    """Every bar, sparkline and box line was a `?` (PYTHONIOENCODING=ascii, ISO-8859-1, LC_ALL=C without UTF-8 mode)."""
    cases = (
        ("dash", {"PYTHONIOENCODING": "ascii"}, "ascii"),
        ("demo", {"PYTHONIOENCODING": "latin-1"}, "iso8859-1"),
        ("dash", {"LC_ALL": "C", "PYTHONUTF8": "0"}, "ascii"),
    )
    for command, env, named in cases:
        status, said = _start_refused(tmp_path, command, env)
        assert status == 2, (command, env, said)
        assert f"encoding, {named}," in said, said
        assert "LANG=C.UTF-8" in said
        assert "\x1b[?1049h" not in said


async def test_on_a_short_terminal_the_power_graph_gives_way_to_node_rows() -> None:
    """At 40x10 the graph stayed and the table showed its borders only; it comes back when the terminal grows."""
    from factoryctl.tui.widgets.node_table import NodeTable
    from factoryctl.tui.widgets.power_history import PowerHistory

    app = make_app(FrozenServices())
    async with app.run_test(size=(40, 10)) as pilot:
        await first_snapshot(pilot)
        await pilot.pause()
        graph, table = app.screen.query_one(PowerHistory), app.screen.query_one(NodeTable)
        assert not graph.display
        assert table.scrollable_content_region.height >= 3  # its column header and node rows
        assert re.search(r"^ demo01 ", screen_text(app), re.M), screen_text(app)
        await pilot.resize_terminal(80, 5)
        await pilot.pause()
        assert not graph.display  # too short for either: the graph goes first
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        await pilot.pause()
        assert graph.display
        assert table.scrollable_content_region.height >= 6
