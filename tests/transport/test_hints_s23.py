"""Two timeouts get their own hint, the same whether the error is met live or read back from a controller's store.

Silence during authentication (`no answer from USER@HOST:PORT to authentication within N s`) got the TCP connect
timeout's hint, which says nothing of an sshd hung looking the user up (LDAP, NSS, PAM). An agent upload too slow
for --timeout got its own hint live, but read back from the store, where only kind and message are kept, the general
timeout hint (find what hangs in the agent), which no agent was involved in (review, session 23). docs/ssh.md's hint
table lists both rows word for word.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sshd_fixture import PATIENT, known_hosts, ssh_node, sshd  # noqa: F401 - the fixtures

from factoryctl.transport import hints
from factoryctl.transport.agent_upload import link_failure
from factoryctl.transport.hints import hinted, node_error_hint
from factoryctl.transport.ssh_pool import SshPool

DOCS = Path(__file__).resolve().parents[2] / "docs" / "ssh.md"

AUTH_SILENCE = "no answer from root@10.0.0.7:22 to authentication within 10 s (ssh.connect_timeout_s)"
UPLOAD_SLOW = "the agent upload did not finish within 15 s (--timeout)"


def _documented() -> dict[str, str]:
    rows = [line for line in DOCS.read_text().splitlines() if line.startswith("| `") and line.count("|") == 3]
    return {line.split("|")[1].strip(): line.split("|")[2].strip() for line in rows}


def test_silence_during_authentication_has_its_own_hint_read_back_and_documented() -> None:
    hint = node_error_hint("n1", "timeout", AUTH_SILENCE)
    assert hint == (
        "check the network path to the node and that its sshd is not hung looking the user up (LDAP, NSS, PAM: "
        "sshd's log there); on a slow network raise ssh.connect_timeout_s in factory.yaml."
    )
    # the TCP connect's own timeout keeps its hint
    tcp = node_error_hint("n1", "timeout", "no answer from 10.0.0.7:22 within 10 s (ssh.connect_timeout_s)")
    assert tcp == hints.CONNECT_TIMEOUT_HINT
    assert _documented()["`timeout` (no answer to authentication)"] == hint


def test_a_slow_agent_upload_gets_the_same_hint_live_and_read_back_from_the_store(
    ssh_node: Callable[..., Any],  # noqa: F811
) -> None:
    pool = SshPool(PATIENT)
    try:
        connection = pool.connect(ssh_node())
        # the upload's deadline passed on a link that still answers: too slow, not lost (agent_upload.py)
        live = link_failure(connection, TimeoutError(), 15, expired=True)
    finally:
        pool.close()
    assert live is not None
    assert (live.kind, live.message) == ("timeout", UPLOAD_SLOW)
    stored = node_error_hint("n1", live.kind, live.message)  # the store keeps kind and message
    assert stored == live.hint == "check the network path to the node; on a slow link raise --timeout."
    assert hinted(live).hint == live.hint  # a poll's errors pass through the table: unchanged
    assert _documented()["`timeout` (the agent upload did not finish)"] == stored
