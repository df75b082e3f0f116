"""Exit 129 (SIGHUP) is one of ExitCode's statuses, as 130, 141 and 143 are, and every stop path uses it.

It used to be a bare 129 in cli/signals.py and cli/app.py, beside an enum that held the other signal statuses.
"""

from __future__ import annotations

import signal

from factoryctl.cli import process_exit
from factoryctl.cli.signals import STOPPED_HINTS, STOPPED_WORDS, HungUp, Terminated, stopped_status
from factoryctl.errors import ExitCode


def test_hung_up_is_128_plus_sighup_in_the_enum() -> None:
    assert ExitCode.HUNG_UP == 129 == 128 + signal.SIGHUP


def test_a_sighup_stop_exits_with_the_enums_status_and_says_hung_up() -> None:
    assert stopped_status(HungUp()) == ExitCode.HUNG_UP
    assert stopped_status(Terminated()) == ExitCode.TERMINATED
    assert stopped_status(KeyboardInterrupt()) == ExitCode.INTERRUPTED
    assert STOPPED_WORDS[ExitCode.HUNG_UP] == "hung up"
    assert "exit 129" in STOPPED_HINTS[ExitCode.HUNG_UP]


def test_every_signal_status_counts_as_a_stop_at_the_end_of_the_process() -> None:
    stops = {ExitCode.HUNG_UP, ExitCode.INTERRUPTED, ExitCode.TERMINATED}
    assert {int(code) for code in stops} == process_exit._STOPPED
