"""`signals_held`: Ctrl-C or SIGTERM during a write that must complete take effect once it has (power set's audit)."""

from __future__ import annotations

import signal

import pytest

from factoryctl.store.held_signals import signals_held


def _write_interrupted(done: list[str]) -> None:
    with signals_held():
        signal.raise_signal(signal.SIGINT)
        done.append("the write went on")


def test_a_ctrl_c_during_the_block_is_raised_after_it():
    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        _write_interrupted(done)
    assert done == ["the write went on"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is back


def test_a_sigterm_during_the_block_reaches_the_handler_in_place_after_it():
    seen: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with signals_held():
            signal.raise_signal(signal.SIGTERM)
            assert seen == []  # held while the block runs
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_nothing_happens_without_a_signal():
    with signals_held():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
