"""`--watch` with every `--fanout` place held by nodes that do not answer: the others are still asked, or said old.

A review ran `nodes --watch -f 2` with two nodes whose sshd never speaks: the healthy nodes queued behind them were
never asked until those asks ran out (`--timeout`, 60 s here), and at every redraw their rows stood unchanged, with no
error, as if fresh (or, never answered, `down` with ERROR `unknown`). Now an ask past its bound gives its place to a
node waiting for one (as many as `--fanout` again may be set aside so), and a node that still waits behind asks that
all overran is shown as a slow node is: its last rows, `degraded`, and a `timeout` error saying it waits its turn. A
node not heard from yet, and not slow, is `connecting` (the dashboard's word), not `down`.
The hung nodes are TCP ports that accept and never speak (`Mute`); the healthy ones local simulated nodes. The first
round is shortened to the others' bound (`FIRST_ROUND_S`), so the tests take a few rounds of 1 s; the redraws are
counted (Ctrl-C at a pause, as test_gpus_watch_silent_node), never timed.
"""

from __future__ import annotations

import contextlib
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from silent_listener import listening
from test_gpus_watch_silent_node import Mute, Redraw, _redraws, _rows, _said
from waiting import wait_for

#: Fresh readings each healthy node must show; the most rounds a run may take (about 1 s each).
FRESH = 2
MOST_ROUNDS = 8
LOCAL = "{{transport: local, sim: {{profile: h100-sxm, gpus: 1, seed: {seed}}}}}"


def _asks_ended() -> None:
    """Wait for the asks still going at Ctrl-C to end, so no thread of this test outlives it."""
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("watch-")], what="the asks to end")


@contextlib.contextmanager
def _fleet(tmp_path: Path, nodes: Callable[[int], str]) -> Iterator[tuple[Path, Mute]]:
    """factory.yaml of `nodes(port)`, `port` a listener that never speaks (a hung sshd); on exit every ask ends."""
    mute = Mute()
    try:
        with listening(mute.accept) as port:
            path = tmp_path / "factory.yaml"
            path.write_text(f"name: lab\nssh: {{connect_timeout_s: 60}}\nnodes:\n{nodes(port)}")
            yield path, mute
    finally:
        for sock in mute.held:
            sock.close()
        _asks_ended()


def _fresh(redraws: list[Redraw], node: str) -> list[Redraw]:
    """The redraws with a reading of `node` and no error about it (a `nodes` row is there even with no reading)."""
    return [r for r in redraws if _rows(r, node)[0]["last_seen"] is not None and not _said(r, node)]


def _hung(name: str, port: int) -> str:
    return f"  {name}: {{host: 127.0.0.1, port: {port}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"


def _watch(
    cli: Any, path: Path, monkeypatch: pytest.MonkeyPatch, fanout: int, done: Callable[[list[Redraw]], bool]
) -> list[Redraw]:
    """`nodes all -w -f FANOUT -o json` until `done(redraws so far)` at a pause (Ctrl-C) or MOST_ROUNDS."""
    rounds: list[int] = []

    def pause(seconds: float) -> None:
        rounds.append(1)
        if done(_redraws(sys.stdout.getvalue())) or len(rounds) >= MOST_ROUNDS:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    monkeypatch.setattr("factoryctl.cli.listing.pause_while_read", pause)
    monkeypatch.setattr("factoryctl.cli.watch_poll.FIRST_ROUND_S", 0.0)
    argv = ("nodes", "all", "-w", "--interval", "0.1", "--timeout", "60", "-f", str(fanout), "-o", "json")
    result = cli("--config", str(path), *argv)
    assert result.exit_code == 130, result.stderr
    redraws = _redraws(result.stdout)
    assert len(redraws) == len(rounds)
    return redraws


def test_nodes_queued_behind_hung_ones_are_still_asked(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nodes(port: int) -> str:
        return f"{_hung('m1', port)}{_hung('m2', port)}  a: {LOCAL.format(seed=1)}\n  c: {LOCAL.format(seed=2)}\n"

    def done(redraws: list[Redraw]) -> bool:
        return all(len(_fresh(redraws, node)) > FRESH for node in ("a", "c"))

    with _fleet(tmp_path, nodes) as (path, mute):
        redraws = _watch(cli, path, monkeypatch, 2, done)
        held = len(mute.held)
    for node in ("a", "c"):  # was: never asked while m1 and m2 held both places (their --timeout, 60 s)
        seen = [_rows(r, node)[0]["last_seen"] for r in _fresh(redraws, node)]
        assert len(set(seen)) > FRESH, redraws
    assert held == 2  # m1 and m2 asked once each, their asks still going
    for redraw in redraws[1:]:
        for node in ("m1", "m2"):
            ((kind, message),) = _said(redraw, node)
            assert (kind, _rows(redraw, node)[0]["state"]) == ("timeout", "down"), redraw
            assert message.startswith("no answer yet (asked "), message


def _held_back(redraws: list[Redraw], node: str) -> bool:
    """Whether the last of `redraws` says `node`, heard from before, waits its turn behind the nodes that hang."""
    said = _said(redraws[-1], node) if redraws else []
    return bool(_fresh(redraws, node)) and any(message.startswith("not asked again yet: ") for _, message in said)


def test_rows_waiting_behind_a_fanout_held_by_hung_nodes_are_said_to_be_old(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nodes(port: int) -> str:
        return f"  a: {LOCAL.format(seed=1)}\n{_hung('m1', port)}{_hung('m2', port)}"

    with _fleet(tmp_path, nodes) as (path, _):
        redraws = _watch(cli, path, monkeypatch, 1, lambda r: _held_back(r, "a"))
    # was: a's reading redrawn as fresh (`up`, no error) until m1's and m2's asks ran out (60 s)
    assert _held_back(redraws, "a"), redraws
    fresh = _fresh(redraws, "a")
    assert fresh, redraws
    last_heard = _rows(fresh[-1], "a")[0]["last_seen"]
    ((row,), ((kind, message),)) = _rows(redraws[-1], "a"), _said(redraws[-1], "a")
    assert (row["state"], row["gpus"], row["last_seen"], kind) == ("degraded", 1, last_heard, "timeout"), row
    assert "--fanout" in message, message
    assert message.startswith("not asked again yet: waiting "), message
    assert "; its rows are its reading of " in message, message


def test_a_node_not_answered_yet_is_connecting_not_down(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "gate"
    slow = tmp_path / "slow-python"  # its agent waits for `gate`: asked, no answer yet
    slow.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexit 1\n")
    slow.chmod(slow.stat().st_mode | stat.S_IXUSR)
    fails = "{transport: local, python: /nonexistent/python3, sim: {profile: h100-sxm, gpus: 1}}"
    gated = f"{{transport: local, python: {slow}, sim: {{profile: h100-sxm, gpus: 1}}}}"
    path = tmp_path / "factory.yaml"
    path.write_text(f"name: lab\nnodes:\n  f: {fails}\n  g: {gated}\n")
    try:  # f fails at once, so g is asked, less than a round before the first redraw: not slow yet
        (redraw,) = _watch(cli, path, monkeypatch, 1, lambda r: True)
    finally:
        gate.touch()
        _asks_ended()
    ((row,),) = [_rows(redraw, "g")]
    assert (row["state"], row["error"], row["last_seen"]) == ("connecting", None, None), row  # was: down, unknown
    assert _said(redraw, "g") == []
