"""The liveness watch tells how long its check under way has waited for an answer (an agent's teardown asks).

A silent peer is known long before the check's own timeout closes the connection: `unanswered_for` grows while a
probe waits and is 0.0 between checks. The probes here are plain callables (the watch takes any bounded probe).
"""

from __future__ import annotations

import threading

from waiting import wait_for

from factoryctl.transport.ssh_watch import LivenessWatch


def test_a_check_under_way_counts_its_wait_and_an_answered_one_does_not():
    watch = LivenessWatch()
    asked, answer = threading.Event(), threading.Event()

    def probe() -> bool:
        asked.set()
        return answer.wait(60)  # a peer that does not answer until told to

    watched = watch.add("ssh-watch-test", 0.01, probe, lambda: None)
    try:
        assert watched.unanswered_for() == 0.0  # nothing asked yet
        assert asked.wait(30)
        wait_for(lambda: watched.unanswered_for() > 0.0)
        answer.set()
    finally:
        watch.remove(watched)
    wait_for(lambda: watched.checking is None)  # the last check answered
    assert watched.unanswered_for() == 0.0
