"""What the inventory says about a node, after factory.yaml's node-set keys are expanded."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Transport = Literal["ssh", "local"]


@dataclass(frozen=True)
class SimSpec:
    """A simulated node's driver settings (`sim:` in factory.yaml)."""

    profile: str = "h100-sxm"
    gpus: int = 8
    seed: int = 0
    unsupported: tuple[str, ...] = ()
    #: The driver refuses power-limit changes unless the agent runs as root, as real NVML does.
    setters_need_root: bool = False


@dataclass(frozen=True)
class NodeSpec:
    """One inventory node: where it is, how to reach it, and how the scheduler sees it."""

    name: str
    host: str
    port: int = 22
    transport: Transport = "ssh"
    user: str | None = None
    identity_file: str | None = None
    known_hosts: str | None = None
    python: str = "python3"
    rack: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    sim: SimSpec | None = None
    #: GPUs on the node as factory.yaml says (`gpus`, else a simulated node's count); None when it does not say.
    gpus: int | None = None

    @property
    def address(self) -> str:
        """`host:port` for messages; known_hosts uses `[host]:port`."""
        return f"{self.host}:{self.port}"
