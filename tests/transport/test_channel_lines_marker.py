"""The agent's stdout over SSH: a login shell's output before the agent's marker line is dropped, but when the
marker never comes (the agent never started) the lines that did come are passed on, so the error quotes them."""

from __future__ import annotations

from collections.abc import Callable

from factoryctl.transport.ssh_node import _ChannelLines


def _chunks(*parts: bytes) -> Callable[[int], bytes]:
    pending = list(parts)
    return lambda size: pending.pop(0) if pending else b""


def test_lines_before_the_marker_are_dropped() -> None:
    lines = _ChannelLines(_chunks(b"Welcome banner\nfactoryctl-start-", b'XYZ\n{"hello": 1}\n'), after=b"start-XYZ")
    assert list(lines) == [b'{"hello": 1}\n']


def test_without_the_marker_the_first_lines_are_passed_on_at_the_end() -> None:
    lines = _ChannelLines(_chunks(b"Welcome banner\n", b"python3: command not found\n"), after=b"start-XYZ")
    assert list(lines) == [b"Welcome banner\n", b"python3: command not found\n"]


def test_without_the_marker_only_the_first_lines_are_kept() -> None:
    lines = _ChannelLines(_chunks(b"".join(b"line %d\n" % i for i in range(100))), after=b"start-XYZ")
    assert list(lines) == [b"line %d\n" % i for i in range(8)]
