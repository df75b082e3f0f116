"""The progress line of long replays: told by the replay as arrivals go in, shown on a terminal only, then wiped."""

from __future__ import annotations

import io

from test_sched_trace_cli import synthetic_trace

from factoryctl.cli.progress import DELAY_S, ProgressLine, replay_progress
from factoryctl.scheduler.policy import POLICIES
from factoryctl.scheduler.simulate import cluster_nodes, simulate
from factoryctl.scheduler.trace import parse_trace


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_replay_reports_its_arrivals_about_fifty_times_in_order():
    trace = parse_trace(synthetic_trace(500).splitlines())
    heard: list[tuple[int, int]] = []
    plain = simulate(trace, cluster_nodes(4, 8), POLICIES["default"])
    told = simulate(trace, cluster_nodes(4, 8), POLICIES["default"], progress=lambda i, n: heard.append((i, n)))
    assert 40 <= len(heard) <= 50
    assert all(total == 500 for _, total in heard)
    submitted = [i for i, _ in heard]
    assert submitted == sorted(submitted)
    assert submitted[0] >= 10
    assert submitted[-1] <= 500
    assert [(r.job_id, r.start_s) for r in told.records] == [(r.job_id, r.start_s) for r in plain.records]


def test_the_line_waits_half_a_second_then_rewrites_itself_and_is_wiped():
    now = [100.0]
    out = Terminal()
    line = ProgressLine("replaying default", out, clock=lambda: now[0])
    line(10, 1000)
    assert out.getvalue() == ""  # a short replay shows nothing
    now[0] += DELAY_S
    line(500, 68000)
    line(68000, 68000)
    assert (
        out.getvalue()
        == "\rreplaying default: 0% of 68,000 jobs submitted\rreplaying default: 100% of 68,000 jobs submitted"
    )
    line.wipe()
    assert out.getvalue().endswith("\r\x1b[K")


def test_no_line_off_a_terminal_or_when_quiet():
    with replay_progress("replaying fifo", quiet=False, stream=io.StringIO()) as progress:
        assert progress is None
    with replay_progress("replaying fifo", quiet=True, stream=Terminal()) as progress:
        assert progress is None


def test_the_line_is_wiped_when_the_replay_fails():
    out = Terminal()
    try:
        with replay_progress("replaying sjf", quiet=False, stream=out) as progress:
            assert progress is not None
            progress.began -= DELAY_S
            progress(3, 4)
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert out.getvalue() == "\rreplaying sjf: 75% of 4 jobs submitted\r\x1b[K"
