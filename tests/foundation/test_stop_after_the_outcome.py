"""A stop signal that comes once the command's outcome is decided changes nothing: its sentence and status stand.

The CLI put its handlers back as the command's block ended, before the error boundary said the outcome. A second
Ctrl-C 10 ms after the first landed there (`_runs_until_stopped`) and printed a KeyboardInterrupt traceback instead
of `factoryctl: interrupted`; a SIGTERM or SIGHUP after a command ended, or while its error was said, killed the
process (-15, -1: no status, half a message), and `controller run` that had logged `controller stopped` died of a
second SIGTERM (143). From the block's end to the process's exit a stop is now taken quietly, and once the exit
handlers run it ends the process at once with the status decided (as Ctrl-C did already).

A real process each: the CLI's `main`, each signal sent at the first call of the function named (`module.function:
SIGNAL`), through C's raise(), so that it lands right there.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from stop_children import SIGNALS_AT_CALLS, one_node_factory, run_script
from stop_messages import INTERRUPTED

from factoryctl.cli import process_exit


def run_child(config: Path, words: str, *plan: str) -> subprocess.CompletedProcess[str]:
    return run_script(SIGNALS_AT_CALLS, config, words, *plan)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return one_node_factory(tmp_path)


def test_a_second_ctrl_c_as_the_first_is_said_changes_nothing(config: Path) -> None:
    child = run_child(
        config,
        "config validate",
        "factoryctl.config.load_config:SIGINT",
        "factoryctl.cli.app._runs_until_stopped:SIGINT",
    )
    assert (child.returncode, child.stderr.splitlines()) == (130, INTERRUPTED), child.stderr


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_after_the_command_ended_keeps_its_status(config: Path, signame: str) -> None:
    child = run_child(config, "config validate", f"factoryctl.cli.app.exit_now_on_interrupt:{signame}")
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith(f"{config}: ok"), child.stdout


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_a_stop_while_an_error_is_said_keeps_the_error(config: Path, signame: str) -> None:
    config.write_text("nodes: [oops\n")
    child = run_child(config, "config validate", f"factoryctl.cli.app._print_error:{signame}")
    assert child.returncode == 3, child.stderr
    assert child.stderr.startswith(f"factoryctl: {config}:"), child.stderr


@pytest.fixture
def handlers_kept() -> Iterator[None]:
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("handlers_kept")
def test_from_the_exit_handlers_on_a_kept_stop_ends_the_process_with_its_status() -> None:
    signal.signal(signal.SIGTERM, process_exit.outcome_kept)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)  # not the CLI's: left as it is
    process_exit._exit_with_on_interrupt(3)
    leave = signal.getsignal(signal.SIGTERM)
    assert isinstance(leave, process_exit._LeaveWith)
    assert leave.status == 3
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
