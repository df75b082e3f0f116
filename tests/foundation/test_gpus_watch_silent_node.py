"""`gpus --watch` keeps redrawing the nodes that answer while one node says nothing.

A network review cut one node's link under `gpus na,nb --watch --interval 2`: no redraw at all for 16 s, the healthy
node's rows frozen too, and not a word about the silent one; with the link already down each redraw took the 5 s
connect timeout. Each round waited for the last node. Now a round waits at most its interval (1 s at least, the first
3 s): a node still being asked is said (`no answer yet`, or its last rows with `no answer for N s`), asked once however
many rounds go by, and the others are fresh. `a` is a local simulated node; `b` a TCP port that accepts and never
speaks (a hung sshd), or the real sshd behind a relay that goes silent (a link gone half-open). Before, the first
redraw after `b` went silent came only when its connect timeout ended. The rounds are counted (Ctrl-C at a pause),
never timed.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from relays import silencing_node
from silent_listener import listening
from sshd_fixture import SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from waiting import wait_for

#: Redraws in which `a` must show a fresh reading while `b` is silent; the most rounds a run may take.
FRESH = 2
MOST_ROUNDS = 30
A_NODE = "  a: {transport: local, sim: {profile: h100-sxm, gpus: 1, seed: 3}}\n"

Redraw = dict[str, Any]


class Mute:
    """Accepts connections and never answers; keeps them, to count them and close them at the end."""

    def __init__(self) -> None:
        self.held: list[socket.socket] = []

    def accept(self, sock: socket.socket) -> None:
        self.held.append(sock)


def _b_asked_ended() -> None:
    """Wait for b's ask (its connection just cut) to end, so no thread of this test outlives it."""
    wait_for(lambda: not [t for t in threading.enumerate() if t.name == "watch-b"], what="b's ask to end")


def _watch(cli: Any, path: Path, monkeypatch: pytest.MonkeyPatch, done: Callable[[list[Redraw]], bool]) -> list[Redraw]:
    """`gpus a,b -w -o json` until `done(redraws so far)` at a pause (Ctrl-C) or MOST_ROUNDS; its redraws."""
    rounds: list[int] = []

    def pause(seconds: float) -> None:
        rounds.append(1)
        if done(_redraws(sys.stdout.getvalue())) or len(rounds) >= MOST_ROUNDS:  # type: ignore[attr-defined]
            raise KeyboardInterrupt

    monkeypatch.setattr("factoryctl.cli.listing.pause_while_read", pause)
    result = cli("--config", str(path), "gpus", "a,b", "-w", "--interval", "0.1", "--timeout", "60", "-o", "json")
    assert result.exit_code == 130, result.stderr
    redraws = _redraws(result.stdout)
    assert len(redraws) == len(rounds)
    return redraws


def _redraws(text: str) -> list[Redraw]:
    return [json.loads(line) for line in text.splitlines()]


def _rows(redraw: Redraw, node: str) -> list[dict[str, Any]]:
    return [item for item in redraw["items"] if item["node"] == node]


def _said(redraw: Redraw, node: str) -> list[tuple[str, str]]:
    return [(e["error"], e["message"]) for e in redraw["errors"] if e["node"] == node]


def _fresh(redraws: list[Redraw], node: str) -> list[Redraw]:
    """The redraws with a fresh reading of `node`: its rows and no error (a loaded machine may delay one)."""
    return [r for r in redraws if _rows(r, node) and not _said(r, node)]


def _energy(redraws: list[Redraw], node: str) -> list[float]:
    return [_rows(r, node)[0]["energy_j"] for r in redraws]


def _never_answered(redraw: Redraw) -> bool:
    """Whether the redraw says `b` is still being asked, with no row of it."""
    said = _said(redraw, "b")
    return not _rows(redraw, "b") and len(said) == 1 and said[0][0] == "timeout" and "no answer yet (" in said[0][1]


def test_the_answering_node_is_redrawn_while_a_mute_one_is_still_asked(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mute = Mute()
    try:
        with listening(mute.accept) as port:
            path = tmp_path / "factory.yaml"
            b = f"  b: {{host: 127.0.0.1, port: {port}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
            path.write_text(f"name: lab\nssh: {{connect_timeout_s: 60}}\nnodes:\n{A_NODE}{b}")
            redraws = _watch(
                cli, path, monkeypatch, lambda r: len(_fresh(r, "a")) > FRESH or not all(map(_never_answered, r))
            )
    finally:
        for sock in mute.held:
            sock.close()
        _b_asked_ended()
    assert all(map(_never_answered, redraws)), redraws  # was: one redraw, after 60 s, saying `sent no SSH banner`
    energy = _energy(_fresh(redraws, "a"), "a")
    assert len(energy) > FRESH  # a's rows kept coming while b hung
    assert energy == sorted(set(energy))  # each a new reading (its energy counter only grows)
    assert len(mute.held) == 1  # b asked once, not once more every round


def test_a_node_gone_silent_keeps_its_last_rows_marked_while_the_others_refresh(
    cli: Any,
    sshd: SshdServer,  # noqa: F811 - the fixture
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    silenced_at: list[int] = []
    try:
        with silencing_node(sshd, tmp_path, "b") as (relay, node):  # a link gone half-open once `silent` is set
            # silence b once it answered; stop once a was fresh FRESH times since
            def done(redraws: list[Redraw]) -> bool:
                if not silenced_at and _fresh(redraws, "b"):
                    relay.silent.set()
                    silenced_at.append(len(redraws))
                after = redraws[silenced_at[0] :] if silenced_at else []
                return len(_fresh(after, "a")) > FRESH or any(_said(r, "b") and not _rows(r, "b") for r in after)

            known = node.known_hosts  # sshd's host key, trusted at the relay's port
            ssh = f"{{connect_timeout_s: 30, user: {sshd.user}, identity_file: {sshd.user_key}, known_hosts: {known}}}"
            b = f"  b: {{host: 127.0.0.1, port: {node.port}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
            path = tmp_path / "factory.yaml"
            path.write_text(f"name: lab\nssh: {ssh}\nnodes:\n{A_NODE}{b}")
            redraws = _watch(cli, path, monkeypatch, done)
    finally:
        _b_asked_ended()  # the relay closed: b's ask on it ends
    assert silenced_at, redraws
    last_heard = _energy(redraws[: silenced_at[0]], "b")[-1]
    after = redraws[silenced_at[0] :]
    for redraw in after:  # b: the rows it last sent, said to be old (was: no redraw until its connect timeout)
        assert [item["energy_j"] for item in _rows(redraw, "b")] == [last_heard], redraw
        ((kind, message),) = _said(redraw, "b")
        assert kind == "timeout"
        assert message.startswith("no answer for "), message
        assert "(still being asked); its rows are its reading of " in message
    energy = _energy(_fresh(after, "a"), "a")
    assert len(energy) > FRESH
    assert energy == sorted(set(energy))
