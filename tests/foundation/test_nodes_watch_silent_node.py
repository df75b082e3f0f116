"""`nodes --watch` keeps redrawing the nodes that answer while one node says nothing, as `gpus --watch` does.

`gpus --watch` stopped waiting for the last node each round (watch_poll.py); `nodes --watch` still asked every node
and waited for the last, so a node whose sshd hangs or whose link went half-open froze the whole screen, the healthy
nodes' rows too, for its connect timeout. Now its rounds are the same `WatchPoll`'s: a node never heard from is a
`down` row saying `no answer yet`, asked once however many rounds go by; a node gone silent keeps its last row
(`degraded`, LAST SEEN its reading) with `no answer for N s`; the others are fresh each redraw. The redraws are
`gpus`' test's (`_watch`, rounds counted at Ctrl-C, never timed), of `nodes a,b` in place of `gpus a,b`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from relays import SilencingRelay
from silent_listener import listening
from sshd_fixture import SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from test_gpus_watch_silent_node import (
    A_NODE,
    FRESH,
    Mute,
    Redraw,
    _b_asked_ended,
    _fresh,
    _rows,
    _said,
    _watch,
)

Accept = Callable[[socket.socket], None]


def _as_nodes(cli: Any) -> Any:
    """`cli` running `nodes` where it is told `gpus`: `_watch` then watches `nodes a,b -w ... -o json`."""
    return lambda *argv: cli(*("nodes" if word == "gpus" else word for word in argv))


def _seen(redraws: list[Redraw], node: str) -> list[str]:
    """`node`'s LAST SEEN in each of `redraws` (when the reading shown was taken)."""
    return [_rows(redraw, node)[0]["last_seen"] for redraw in redraws]


def _never_answered(redraw: Redraw) -> bool:
    """Whether the redraw shows `b` still being asked and never heard from: a `down` row, `no answer yet`."""
    ((row,), said) = _rows(redraw, "b"), _said(redraw, "b")
    never = (row["state"], row["error"], row["last_seen"]) == ("down", "timeout", None)
    return never and len(said) == 1 and said[0][0] == "timeout" and "no answer yet (" in said[0][1]


@contextlib.contextmanager
def _fleet(tmp_path: Path, accept: Accept, ssh: Callable[[int], str], release: Callable[[], None]) -> Iterator[Path]:
    """factory.yaml of `a` and `b`, b a port whose connections go to `accept`; on exit `release`, then b's ask ends."""
    try:
        with listening(accept) as port:
            b = f"  b: {{host: 127.0.0.1, port: {port}, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
            (tmp_path / "factory.yaml").write_text(f"name: lab\nssh: {ssh(port)}\nnodes:\n{A_NODE}{b}")
            yield tmp_path / "factory.yaml"
    finally:
        release()
        _b_asked_ended()


def _mute_done(redraws: list[Redraw]) -> bool:
    """Stop once `a` was fresh FRESH times, or at once when `b` is not shown as still asked."""
    return len(_fresh(redraws, "a")) > FRESH or not all(map(_never_answered, redraws))


def test_the_answering_node_is_redrawn_while_a_mute_one_is_still_asked(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mute = Mute()
    with _fleet(tmp_path, mute.accept, lambda _: "{connect_timeout_s: 60}", lambda: _close(mute.held)) as path:
        redraws = _watch(_as_nodes(cli), path, monkeypatch, _mute_done)
    assert all(map(_never_answered, redraws)), redraws  # was: one redraw, after 60 s, saying `sent no SSH banner`
    fresh = _fresh(redraws, "a")
    assert len(fresh) > FRESH  # a's row kept coming while b hung
    assert {_rows(r, "a")[0]["state"] for r in fresh} == {"up"}
    seen = _seen(fresh, "a")
    assert seen == sorted(set(seen))  # each a new reading
    assert len(mute.held) == 1  # b asked once, not once more every round


def _close(held: list[socket.socket]) -> None:
    for sock in held:
        sock.close()


def _relayed_ssh(server: SshdServer, tmp_path: Path) -> Callable[[int], str]:
    """factory.yaml's `ssh:` for `server` reached through a relay on a port: its user, key and host key there."""

    def ssh(port: int) -> str:
        known = replace(server, port=port).write_known_hosts(tmp_path / "known_hosts")
        return f"{{connect_timeout_s: 30, user: {server.user}, identity_file: {server.user_key}, known_hosts: {known}}}"

    return ssh


def test_a_node_gone_silent_keeps_its_last_row_marked_while_the_others_refresh(
    cli: Any,
    monkeypatch: pytest.MonkeyPatch,
    sshd: SshdServer,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("FACTORYCTL_REMOTE_CACHE", str(tmp_path / "remote-cache"))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    relay, cut = SilencingRelay(sshd.port), []  # cut: how many redraws came before b went silent

    def done(redraws: list[Redraw]) -> bool:  # b silent once it answered; stop once a was fresh FRESH times since
        if not cut and _fresh(redraws, "b"):
            relay.silent.set()
            cut.append(len(redraws))
        after = redraws[cut[0] :] if cut else []
        return len(_fresh(after, "a")) > FRESH or any(_rows(r, "b")[0]["state"] == "down" for r in after)

    def release() -> None:
        relay.silent.set()
        relay.close()

    with _fleet(tmp_path, relay.accept, _relayed_ssh(sshd, tmp_path), release) as path:
        redraws = _watch(_as_nodes(cli), path, monkeypatch, done)
    assert cut, redraws
    (last_heard,) = _seen(redraws[cut[0] - 1 : cut[0]], "b")
    after = redraws[cut[0] :]
    for redraw in after:  # b: the row it last sent, said to be old (was: no redraw until its connect timeout)
        ((row,), ((kind, message),)) = _rows(redraw, "b"), _said(redraw, "b")
        assert (row["state"], row["gpus"], row["last_seen"], kind) == ("degraded", 1, last_heard, "timeout"), redraw
        assert message.startswith("no answer for "), message
        assert "(still being asked); its rows are its reading of " in message
    seen = _seen(_fresh(after, "a"), "a")
    assert len(seen) > FRESH  # a: a new reading each time
    assert seen == sorted(set(seen))
