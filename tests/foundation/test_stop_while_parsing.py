"""Review 13: a Ctrl-C while the command line was being parsed exited 130 and said nothing.

Typer builds each option's converter as it parses (importing pydantic the first time, the first second of a run),
and turned a KeyboardInterrupt there into a silent exit 130. docs/cli.md promises the sentence and hint whatever
the command, even while it is still loading. The Ctrl-C is raised from that converter's construction, in process.

At the other end, a Ctrl-C after the output was complete, while the interpreter tore its modules down, killed the
process by SIGINT (130 to the shell, nothing said). The Ctrl-C is sent from a destructor that runs in that teardown.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import pytest
import typer.core

from factoryctl.cli.signals import STOPPED_HINTS
from factoryctl.errors import ExitCode

SAID = f"factoryctl: interrupted\nhint: {STOPPED_HINTS[ExitCode.INTERRUPTED]}\n"


def _ctrl_c_while_parsing(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make the first option converter built raise KeyboardInterrupt, as a Ctrl-C during that import would."""
    built: list[object] = []

    def interrupted(descriptor: object) -> Any:
        built.append(descriptor)
        raise KeyboardInterrupt

    monkeypatch.setattr(typer.core, "build_runtime_param", interrupted)
    return built


@pytest.mark.parametrize(
    "args",
    [
        ("-q", "sched", "simulate", "--trace", "t.csv", "--nodes", "1"),
        ("sched", "explain", "--trace", "t.csv", "--nodes", "1", "--job", "a"),
        ("events", "--follow"),  # runs until stopped, but had not started: the stop is said
    ],
)
def test_a_ctrl_c_while_parsing_is_said_with_its_hint(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...]
) -> None:
    built = _ctrl_c_while_parsing(monkeypatch)
    result = cli(*args)
    assert built, "the Ctrl-C was never raised"
    assert result.exit_code == 130
    assert result.stderr == SAID
    assert result.stdout == ""


#: `factoryctl --version`, with a Ctrl-C sent as the interpreter tears down the script's module (after every exit
#: handler, once Python has put SIGINT back to its default).
CTRL_C_IN_TEARDOWN = textwrap.dedent(
    """
    import os, signal, sys, time

    class CtrlCInTeardown:
        def __del__(self):
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.2)

    late = CtrlCInTeardown()
    sys.argv = ["factoryctl", "--version"]
    from factoryctl.cli.entry import main
    main()
    """
)


def test_a_ctrl_c_after_the_output_keeps_the_exit_status_decided() -> None:
    result = subprocess.run([sys.executable, "-c", CTRL_C_IN_TEARDOWN], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr  # not -2, the death by SIGINT
    assert result.stdout.startswith("factoryctl ")
