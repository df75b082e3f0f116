"""A stopped command is an error like the others: its sentence (`interrupted`, `terminated`) comes with a hint.

`power set` stopped mid-way is in tests/power/test_power_set_stop_hint.py.
"""

from __future__ import annotations

import signal

import pytest
import typer

from factoryctl.cli.signals import sigterm_interrupts


def _terminated_while_working() -> None:
    with sigterm_interrupts():
        signal.raise_signal(signal.SIGTERM)  # its Python handler runs before raise_signal returns


def test_sigterm_prints_terminated_and_a_hint(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(typer.Exit) as stopped:
        _terminated_while_working()
    assert stopped.value.exit_code == 143
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "factoryctl: terminated"
    assert err[1].startswith("hint: SIGTERM stopped it (exit 143")
    assert "run the command again" in err[1]
