"""The agent's command line, built the same way for every transport (docs/agent-protocol.md).

Built as argv and quoted with `quoting.shell_join` where a shell is involved; nothing is passed through the environment,
because sshd drops it.
"""

from __future__ import annotations

from pathlib import PurePath

from factoryctl.model.inventory import NodeSpec


def agent_argv(
    node: NodeSpec, factory: str, python: str, zipapp: str | PurePath, sim_state_dir: str | None
) -> list[str]:
    """`python3 <zipapp> --node NAME --factory F [--sim PROFILE --gpus N --seed S --unsupported A,B ...]`.

    A simulated node's remaining options: `--setters-need-root` when its driver wants root for setters, and
    `--state-dir D`.
    """
    argv = [python, _as_operand(str(zipapp)), "--node", node.name, "--factory", factory]
    if node.sim is not None:
        argv += ["--sim", node.sim.profile, "--gpus", str(node.sim.gpus), "--seed", str(node.sim.seed)]
        if node.sim.unsupported:
            argv += ["--unsupported", ",".join(node.sim.unsupported)]
        if node.sim.setters_need_root:
            argv.append("--setters-need-root")
        if sim_state_dir:
            argv += ["--state-dir", _as_operand(sim_state_dir)]
    return argv


def _as_operand(path: str) -> str:
    """A relative path gets `./`, so a name starting with `-` can never be read as an option (`python3 -c...`)."""
    return path if path.startswith(("/", "./", "../")) else f"./{path}"
