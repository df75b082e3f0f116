"""A connection lost under a step that let paramiko's own exception through is worded by how it ended.

paramiko raises `EOFError()`, with no text, from a step that waits on a connection once it is gone (an agent's launch
request, sent on a channel just opened, waits for its answer with no timeout of its own), or `SSHException('Channel
closed.')` when another waiter (a liveness check) was handed the reason first. The fan-out said the generic
`connection lost to n1` (or `SSHException: Channel closed.`, exit 1) even when the liveness watch had closed the
connection because its link stopped answering, and for a node behind a jump host whose jump connection went first
it named no jump host (review, session 23). The connection records how it ended (`silent_for`, its jump host's
connection: `via`) and says when it works for a node (`ssh_lost.SERVING`); the fan-out asks it (`lost_under`), so the
words are those of the steps that catch the error. Real sshds behind relays that go silent with both sockets open (a
link that went down); paramiko is not mocked: the test only picks the moment the link goes down (just before the
agent's launch request is sent).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from relays import SilencingRelay, behind_relayed_jump, silencing_node
from sshd_fixture import PATIENT, SshdServer, sshd  # noqa: F401 - the session's sshd fixture
from stand_in_agent import stand_in_zipapp
from waiting import wait_for

from factoryctl.errors import ExitCode, NodeError
from factoryctl.model.inventory import NodeSpec
from factoryctl.transport import ssh_node
from factoryctl.transport.fanout import fan_out
from factoryctl.transport.hints import SILENT_LINK, SILENT_LINK_HINT, hinted, lost_jump_hint
from factoryctl.transport.ssh_node import SshTransport

#: Checked every second, a check unanswered for 2 s (ssh.connect_timeout_s, above the keepalive) is a dead link.
QUICK = replace(PATIENT, keepalive_s=1, connect_timeout_s=2, channel_timeout_s=600)
#: Far beyond any test's own wait (the agent's hello; a node's own watch when only its jump host's should check).
HUGE_S = 600.0
#: How long a test waits for what should end in seconds (its own timeout, never the behaviour's measure).
TEST_WAIT_S = 120


@pytest.fixture
def zipapp(tmp_path: Path) -> Path:
    """An agent that is never run: its launch request is the step the link goes down under."""
    (tmp_path / "zipapp").mkdir()
    return stand_in_zipapp(tmp_path / "zipapp", "print('never run')")


@pytest.fixture
def silent_at_launch(monkeypatch: pytest.MonkeyPatch) -> Callable[[SilencingRelay], None]:
    """`arm(relay)`: the relay goes silent as the agent's launch line is built (its channel open, its request next)."""

    def arm(relay: SilencingRelay) -> None:
        launch_line = ssh_node._launch_line

        def silenced_first(marker: str, command: str) -> str:
            relay.silent.set()
            return launch_line(marker, command)

        monkeypatch.setattr(ssh_node, "_launch_line", silenced_first)

    return arm


@dataclass
class Started:
    """Starting the agent on a node in the fan-out, its transport closed before the fan-out sees the error.

    As `telemetry.poll.agent_session` does (`gpus`, `nodes`): the error is worded after its connection was closed.
    """

    zipapp: Path
    node_watch_s: float | None = None  # the node's own watch interval (None: the connection's keepalive)
    ssh_config: Path | None = None

    def __call__(self, spec: NodeSpec) -> object:
        transport = SshTransport.open(spec, "lab", replace(QUICK, ssh_config=self.ssh_config))
        try:
            transport.connection.watch(interval=self.node_watch_s)  # as the agent's upload does, here without one
            return transport.start_agent(HUGE_S, zipapp=self.zipapp)
        finally:
            transport.close()


def only_error(results: list[tuple[NodeSpec, object]]) -> NodeError:
    [(_, outcome)] = results
    assert isinstance(outcome, NodeError), outcome
    assert "EOFError" not in str(outcome)
    return outcome


def test_a_bare_eof_after_the_watch_found_the_link_silent_says_the_link_stopped_answering(
    sshd: SshdServer,  # noqa: F811 - the session's sshd fixture
    tmp_path: Path,
    zipapp: Path,
    silent_at_launch: Callable[[SilencingRelay], None],
) -> None:
    with silencing_node(sshd, tmp_path) as (relay, node):
        silent_at_launch(relay)
        error = only_error(fan_out([node], Started(zipapp)))
    assert (error.node, error.kind, error.exit_code) == ("n1", "refused", ExitCode.CONNECTION)
    assert (
        error.message == f"connection lost to {sshd.user}@127.0.0.1:{node.port}: {SILENT_LINK} (no answer within 2 s)"
    )
    assert error.hint == SILENT_LINK_HINT
    assert hinted(error).hint == SILENT_LINK_HINT  # as a poll gives it (`poll_nodes`), the same


def test_paramikos_own_words_from_a_connection_gone_silent_are_the_lost_connection_too(
    sshd: SshdServer,  # noqa: F811 - the session's sshd fixture
    tmp_path: Path,
) -> None:
    """paramiko hands why its connection died to one waiter; the others get `Channel closed.` or, later, this."""
    with silencing_node(sshd, tmp_path) as (relay, node):
        transport = SshTransport.open(node, "lab", QUICK)
        connection = transport.connection

        def work(_: NodeSpec) -> None:
            chan = connection.channel()  # opened for the node's work: a step about to use it
            relay.silent.set()
            wait_for(lambda: not connection.transport.is_active(), TEST_WAIT_S, "the silent link closed")
            chan.exec_command("true")

        try:
            connection.watch()
            error = only_error(fan_out([node], work))
        finally:
            relay.silent.clear()
            transport.close()
    assert (error.node, error.kind, error.exit_code) == ("n1", "refused", ExitCode.CONNECTION)
    assert (
        error.message == f"connection lost to {sshd.user}@127.0.0.1:{node.port}: {SILENT_LINK} (no answer within 2 s)"
    )
    assert error.hint == SILENT_LINK_HINT


@pytest.fixture
def behind_silent_jump(
    sshd: SshdServer,  # noqa: F811 - the session's sshd fixture
    sshd_factory: Callable[..., SshdServer],
    tmp_path: Path,
) -> Iterator[tuple[SilencingRelay, NodeSpec, str, Path]]:
    """Node `behind-1` (the session's sshd) reached through jump host `jumpy`, an sshd behind a relay; its label."""
    jump_server = sshd_factory()
    relay = SilencingRelay(jump_server.port)
    with behind_relayed_jump(relay, sshd, jump_server, tmp_path) as (config, known_hosts, jump_spec):
        spec = sshd.node("n1", known_hosts, host="behind-1")
        try:
            yield relay, spec, f"{jump_server.user}@127.0.0.1:{jump_spec.port}", config
        finally:
            relay.silent.clear()
            ssh_node._JUMPS.close()


def test_a_node_whose_jump_connection_went_silent_first_says_the_jump_hosts_link_stopped_answering(
    behind_silent_jump: tuple[SilencingRelay, NodeSpec, str, Path],
    zipapp: Path,
    silent_at_launch: Callable[[SilencingRelay], None],
) -> None:
    """Only the jump host's watch checks (the node's own is far off): its silence closes the node's tunnel too."""
    relay, spec, jump, config = behind_silent_jump
    silent_at_launch(relay)
    error = only_error(fan_out([spec], Started(zipapp, HUGE_S, config)))
    assert (error.node, error.kind, error.exit_code) == ("n1", "refused", ExitCode.CONNECTION)
    assert error.message == (
        f"connection lost to {spec.user}@127.0.0.1:{spec.port} (through jump host {jump}): "
        "the link to the jump host stopped answering (no answer within 2 s)"
    )
    assert error.hint == lost_jump_hint([jump])
    assert hinted(error).hint == error.hint


def test_a_node_whose_jump_connection_was_closed_first_names_the_jump_host(
    behind_silent_jump: tuple[SilencingRelay, NodeSpec, str, Path],
    zipapp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The jump connection is closed (its sshd gone, or a reset) just before the node's agent launch is sent."""
    _, spec, jump, config = behind_silent_jump
    launch_line = ssh_node._launch_line

    def jump_closed_first(marker: str, command: str) -> str:
        for connection in list(ssh_node._JUMPS._connections.values()):
            connection.transport.close()  # not the pool's close: the jump connection ends under its nodes
        return launch_line(marker, command)

    monkeypatch.setattr(ssh_node, "_launch_line", jump_closed_first)
    error = only_error(fan_out([spec], Started(zipapp, HUGE_S, config)))
    assert (error.node, error.kind, error.exit_code) == ("n1", "refused", ExitCode.CONNECTION)
    assert error.message == f"connection lost to {spec.user}@127.0.0.1:{spec.port} (through jump host {jump})"
    assert error.hint == lost_jump_hint([jump])
