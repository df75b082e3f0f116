"""The factory.yaml schema as strict pydantic models: every key documented once, unknown keys refused.

docs/factory-yaml.md is checked against these models by a test, so the reference cannot drift from the code.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | float) -> float:
    """Seconds from `90`, `90s`, `15m`, `24h` or `30d`."""
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number with s, m, h or d, e.g. 24h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def remote_cache_dir_problem(value: str) -> str | None:
    """Why `value` cannot name the agent cache on the nodes, or None (`ssh.remote_cache_dir` and its env var)."""
    if any(c in value for c in "\n\r\0"):
        return "the directory name must not contain a newline or NUL"
    if not value.strip():
        return "the directory name must not be empty"
    if value.startswith("-"):
        return "the directory name must not start with '-' (write ./-name for a directory really named so)"
    if value.startswith("~") and value != "~" and not value.startswith("~/"):
        return "only `~` and `~/...` (the login directory) are understood; write another user's directory in full"
    return None


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SshDefaults(Strict):
    """`ssh:` defaults applied to every node that does not set its own."""

    user: str | None = Field(None, description="Login user (else ~/.ssh/config, else the local user).")
    identity_file: str | None = Field(None, description="Private key file; ssh-agent keys are tried too.")
    known_hosts: str = Field("~/.ssh/known_hosts", description="Host keys are verified against this file.")
    port: int = Field(22, ge=1, le=65535, description="SSH port.")
    python: str = Field("python3", description="Python interpreter on the nodes that runs the agent.")
    connect_timeout_s: float = Field(10.0, gt=0, description="TCP, banner and auth timeout.")
    remote_cache_dir: str = Field(
        ".cache/factoryctl",
        description="Directory on the nodes the agent is uploaded to (relative, `~` and `~/...`: under the login "
        "directory); it must be a real directory (not a symlink) of the login user, not group/other-writable, and "
        "every directory above it root's or that user's and not group/other-writable unless sticky (see ssh.md). "
        "`$FACTORYCTL_REMOTE_CACHE` overrides it.",
    )

    @field_validator("remote_cache_dir")
    @classmethod
    def _check_remote_cache_dir(cls, value: str) -> str:
        problem = remote_cache_dir_problem(value)
        if problem:
            raise ValueError(problem)
        return value


Profile = Literal["h100-sxm", "a100-sxm4-80gb", "h200-sxm", "b200", "l40s"]


class SimSettings(Strict):
    """`sim:` on a node: the simulated NVML driver instead of real GPUs."""

    profile: Profile = Field("h100-sxm", description="Simulated GPU model.")
    gpus: int | None = Field(None, ge=1, le=64, description="Simulated GPUs (else the node's `gpus`, else 8).")
    seed: int = Field(0, description="Noise seed, so runs repeat.")
    unsupported: tuple[str, ...] = Field((), description="GPU fields the simulated driver reports as not supported.")

    @field_validator("unsupported")
    @classmethod
    def _check_fields(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import difflib

        from factoryctl.model.telemetry import GPU_FIELDS

        valid = [f for f in GPU_FIELDS if f not in ("node", "index", "null_reasons")]
        for name in value:
            if name not in valid and not name.startswith("nvml"):
                near = difflib.get_close_matches(name, valid, n=1)
                suggestion = f"did you mean {near[0]!r}? " if near else ""
                raise ValueError(f"{name!r} is not a GPU field; {suggestion}fields: {', '.join(valid)}")
        return value


class NodeEntry(Strict):
    """One entry under `nodes:`; its key may be a node set (`gpu[01-16]`), every node getting these fields."""

    host: str | None = Field(None, description="Address (defaults to the node's name). Never decides transport.")
    port: int | None = Field(None, ge=1, le=65535, description="SSH port (else ssh.port).")
    user: str | None = Field(None, description="SSH user (else ssh.user).")
    identity_file: str | None = Field(None, description="SSH key (else ssh.identity_file).")
    transport: Literal["ssh", "local"] = Field("ssh", description="`ssh` (default) or `local` (this machine).")
    python: str | None = Field(None, description="Python on the node (else ssh.python).")
    rack: str | None = Field(None, description="Rack name, used by topology-aware placement.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free labels for job constraints.")
    sim: Profile | SimSettings | None = Field(None, description="A profile name or a `sim:` mapping: simulated GPUs.")
    gpus: int | None = Field(None, ge=0, le=64, description="GPU count (for simulated nodes and scheduling).")


class ControllerSettings(Strict):
    """`controller:` the daemon's timers and the store's retention."""

    interval_s: float = Field(1.0, ge=0.05, le=3600, description="Telemetry sampling interval.")
    raw_retention: str = Field("6h", description="How long raw samples are kept.")
    rollup_retention: str = Field("30d", description="How long 1-minute rollups are kept.")
    slow_interval_s: float = Field(
        5.0,
        ge=0.05,
        le=3600,
        description="Temperature, ECC, memory and energy are read by the agents and stored this often.",
    )
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest wait between reconnect attempts to a node.")

    @field_validator("raw_retention", "rollup_retention")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class SchedulerSettings(Strict):
    """`scheduler:` the gang scheduler's defaults."""

    default_walltime: str = Field("24h", description="Walltime of a job submitted without one.")
    preemption: bool = Field(False, description="Let higher-priority jobs preempt lower ones.")

    @field_validator("default_walltime")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class PowerSettings(Strict):
    """`power:` grid-price capping."""

    facility_budget_kw: float | None = Field(
        None, gt=0, description="Facility power budget across all GPUs (the dashboard shows power against it)."
    )
    policy: str | None = Field(
        None, description="Policy file (YAML) as `power simulate --policy` reads (reserved: not applied yet)."
    )
    price_source: str | None = Field(
        None, description="Price source plugin name, e.g. `csv` (the dashboard's price and cost per hour)."
    )
    prices: str | None = Field(None, description="Argument of the price source (for `csv`: the file).")


class FactoryFile(Strict):
    """The whole factory.yaml."""

    name: str = Field("factory", description="Factory name: keys the state dir and simulated GPUs.")
    state_dir: str | None = Field(None, description="Store and state (default ~/.local/state/factoryctl/<name>).")
    ssh: SshDefaults = Field(default_factory=SshDefaults, description="SSH defaults for every node.")
    nodes: dict[str, NodeEntry | None] = Field(default_factory=dict, description="The inventory.")
    groups: dict[str, str] = Field(default_factory=dict, description="Named node sets, used as `@name`.")
    controller: ControllerSettings = Field(default_factory=ControllerSettings, description="Daemon settings.")
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings, description="Scheduler settings.")
    power: PowerSettings = Field(default_factory=PowerSettings, description="Power settings.")

    @field_validator("ssh", "controller", "scheduler", "power", "nodes", "groups", mode="before")
    @classmethod
    def _empty_section(cls, value: object) -> object:
        """A section holding only comments (`power:`) means its defaults."""
        return {} if value is None else value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError("name may use letters, digits, '.', '_' and '-' only")
        return value
