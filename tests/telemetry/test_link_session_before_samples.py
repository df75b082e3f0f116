"""A node shown up can be asked at once: the link hands out its session before the stream's first sample arrives.

The dashboard caps power through `link.session` as soon as a node shows up; a session handed out only after the
stream request returned left a window where the first sample had arrived and `session` was still None.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from factoryctl.config import parse_config
from factoryctl.errors import NodeError
from factoryctl.model.telemetry import NodeSample
from factoryctl.telemetry.links import Backoff, NodeLink, transport_connector


class SessionAtSample:
    """A sink noting, for each sample, whether the link had handed out its session by then."""

    def __init__(self) -> None:
        self.link: NodeLink | None = None
        self.had_session: list[bool] = []
        self.errors: list[NodeError] = []
        self.lock = threading.Lock()
        #: Set before the link is stopped: a sample arriving while it stops finds its session gone, as it should.
        self.stopping = False

    def offer(self, sample: NodeSample) -> None:
        assert self.link is not None
        with self.lock:
            if not self.stopping:
                self.had_session.append(self.link.session is not None)

    def link_failed(self, node: str, error: NodeError) -> None:
        with self.lock:
            self.errors.append(error)

    def link_connected(self, node: str) -> None:
        pass

    def samples_missed(self, node: str, count: int) -> None:
        pass

    def sample_failed(self, node: str, error: NodeError) -> None:
        self.link_failed(node, error)


def test_the_first_sample_finds_the_session_handed_out(tmp_path: Path) -> None:
    text = "name: t\nnodes:\n  s1: {transport: local, sim: h100-sxm}\ncontroller: {interval_s: 0.1}\n"
    path = tmp_path / "factory.yaml"
    path.write_text(text)
    config = parse_config(text, path, state_dir=tmp_path / "state")
    sink = SessionAtSample()
    link = NodeLink(config.nodes["s1"], 0.1, transport_connector(config, 20.0), sink, Backoff())
    sink.link = link
    streamed = link._stream

    def slow_to_return(session: object, stream: int | None) -> int | None:
        started = streamed(session, stream)  # type: ignore[arg-type]
        time.sleep(0.6)  # samples arrive while the request returns (a loaded machine)
        return started

    link._stream = slow_to_return  # type: ignore[method-assign]
    link.start()
    try:
        deadline = time.monotonic() + 20
        while len(sink.had_session) < 3 and time.monotonic() < deadline and not sink.errors:
            time.sleep(0.05)
    finally:
        with sink.lock:
            sink.stopping = True
        link.stop()
        link.join(10)
    assert not sink.errors, sink.errors
    assert len(sink.had_session) >= 3
    assert all(sink.had_session), sink.had_session
