"""A link's own judgements, without a connection: when to ask its agent's time, and what its silence means."""

from __future__ import annotations

import pytest

from factoryctl.errors import NodeError
from factoryctl.telemetry.link_state import STALL_RECHECK_S, ClockProbe, LinkSilence
from factoryctl.telemetry.node_clock import CLOCK_CHECK_EVERY_S, CLOCK_OFF_S
from factoryctl.telemetry.stall_watch import StallWatch

WALL = 1_750_000_000.0
MONO = 1000.0


def test_a_sample_on_time_asks_nothing() -> None:
    probe = ClockProbe()
    assert not probe.sample_seen(WALL, WALL, MONO)
    assert not probe.sample_seen(WALL - CLOCK_OFF_S, WALL, MONO)  # behind by the limit: not past it
    assert not probe.due


def test_a_sample_ahead_asks_nothing() -> None:
    assert not ClockProbe().sample_seen(WALL + 3600, WALL, MONO)


def test_a_sample_more_than_the_limit_behind_makes_a_question_due() -> None:
    probe = ClockProbe()
    assert probe.sample_seen(WALL - CLOCK_OFF_S - 0.1, WALL, MONO)
    assert probe.due


def test_a_due_question_is_not_made_due_again() -> None:
    probe = ClockProbe()
    assert probe.sample_seen(WALL - 60, WALL, MONO)
    assert not probe.sample_seen(WALL - 60, WALL + 1, MONO + 1)  # the link's thread has not asked yet
    assert probe.due


def test_the_agent_is_asked_at_most_every_check_interval() -> None:
    probe = ClockProbe()
    assert probe.sample_seen(WALL - 60, WALL, MONO)
    probe.asking(MONO)
    assert not probe.due
    assert not probe.sample_seen(WALL - 60, WALL, MONO + CLOCK_CHECK_EVERY_S - 0.01)
    assert probe.sample_seen(WALL - 60, WALL, MONO + CLOCK_CHECK_EVERY_S)


def test_the_first_sample_behind_asks_at_once_even_soon_after_start() -> None:
    assert ClockProbe().sample_seen(WALL - 60, WALL, 0.0)  # a monotonic clock near zero (a fresh boot)


def test_an_agent_without_clock_is_not_asked_until_a_new_agent() -> None:
    probe = ClockProbe()
    probe.asking(MONO)
    probe.cannot_answer()
    later = MONO + 10 * CLOCK_CHECK_EVERY_S
    assert not probe.sample_seen(WALL - 60, WALL, later)
    probe.new_agent()
    assert probe.sample_seen(WALL - 60, WALL, later)


def test_silence_counts_from_the_last_sample() -> None:
    silence = LinkSilence()
    silence.heard(MONO)
    assert silence.last_heard() == MONO
    assert silence.until_stall(10.0, MONO + 4.0) == 6.0


def test_the_wait_never_goes_below_the_recheck() -> None:
    silence = LinkSilence()
    silence.heard(MONO)
    assert silence.until_stall(10.0, MONO + 30.0) == STALL_RECHECK_S


def test_a_restarted_stream_counts_silence_from_its_start() -> None:
    silence = LinkSilence()
    silence.heard(MONO)
    silence.restarted(MONO + 5.0)
    assert silence.last_heard() == MONO + 5.0


def test_a_silent_link_is_rebuilt_for_its_silence() -> None:
    error = LinkSilence().stalled("n1", 12.4, 10.0, MONO)
    assert (error.node, error.kind, error.message) == ("n1", "timeout", "no sample for 12 s; reconnecting.")


def test_an_agent_still_sending_errors_is_rebuilt_for_its_error() -> None:
    silence = LinkSilence()
    failed = NodeError("n1", "driver", "n1: NVML failed.")
    silence.sample_failed(failed, MONO)
    assert silence.stalled("n1", 12.0, 10.0, MONO + 4.9) is failed
    assert silence.stalled("n1", 12.0, 10.0, MONO + 5.0).kind == "timeout"  # its errors stopped half a stall ago


@pytest.mark.parametrize("new_session", [False, True])
def test_a_good_sample_or_a_new_session_forgets_the_error(new_session: bool) -> None:
    silence = LinkSilence()
    silence.sample_failed(NodeError("n1", "driver", "n1: NVML failed."), MONO)
    if new_session:
        silence.session_started()
    else:
        silence.heard(MONO)
    assert silence.stalled("n1", 12.0, 10.0, MONO).kind == "timeout"


def test_a_stall_of_the_controller_excuses_a_silence_once() -> None:
    clock = [MONO]
    watch = StallWatch(1.0, monotonic=lambda: clock[0])
    silence = LinkSilence(watch)
    silence.heard(clock[0])
    clock[0] += 12.0  # the controller stalled: the node is heard from its end
    assert silence.last_heard() == MONO + 12.0
    clock[0] += 0.25
    watch.beat()
    clock[0] += 12.0  # stalled again, the node silent since: its real silence counts
    assert silence.last_heard() == MONO + 12.0
    clock[0] += 0.25
    watch.beat()
    silence.connected(clock[0])  # the link made again: the next stall excuses it again
    clock[0] += 0.25
    watch.beat()
    clock[0] += 12.0
    assert silence.last_heard() == clock[0]
