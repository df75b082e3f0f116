"""A pass's node requests use the node's open session when one is given (the controller's link), else open their own."""

from __future__ import annotations

from pathlib import Path

from factoryctl.config import load_config
from factoryctl.jobs.node_calls import on_nodes, using_sessions
from factoryctl.telemetry.poll import agent_session
from factoryctl.transport.session import AgentSession


def test_requests_go_through_the_held_session_of_a_node_and_a_fresh_one_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: nc\nstate_dir: {tmp_path / 'st'}\nnodes:\n  m[1-2]: {{transport: local, sim: {{profile: h100-sxm, gpus: 1}}}}\n"
    )
    config = load_config(path)
    used: dict[str, AgentSession] = {}

    def note(session: AgentSession, node: str) -> list[dict[str, object]]:
        used[node] = session
        return session.ranks(None)

    with agent_session(config.nodes["m1"], config, 15.0) as held:
        with using_sessions(lambda node: held if node == "m1" else None):
            answers = on_nodes(config, ["m1", "m2"], note)
        assert answers == {"m1": [], "m2": []}
        assert used["m1"] is held  # the link's own session: no login for m1
        assert used["m2"] is not held
        assert held.failure is None  # still open for its owner
        assert held.ranks(None) == []
