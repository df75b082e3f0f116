"""The factory.yaml schema as strict pydantic models: every key documented once, unknown keys refused.

docs/factory-yaml.md is checked against these models by a test, so the reference cannot drift from the code.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

# re-exported: config validation, `price sources` and power.plugins import these from here
from factoryctl.textfile import exact_number

#: A duration: a number (ASCII digits: `٣h` is no duration) and its unit. A unit is required: `90` could be seconds
#: or, given to `--since`, a date; factory.yaml's `raw_retention: "90"` was silently 90 seconds.
_DURATION = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd])?\s*", re.ASCII)
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
#: `1h30m`, `2d12h`: several numbers each with its unit, as systemd and Go write a duration.
_COMPOUND = re.compile(r"\s*(?:[0-9]+(?:\.[0-9]+)?\s*[smhd]\s*){2,}", re.ASCII)
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([smhd])", re.ASCII)


def parse_duration(text: str | float) -> float:
    """Seconds from `90s`, `15m`, `24h`, `30d` or `1h30m` (a number, from Python, is seconds already)."""
    if isinstance(text, (int, float)):
        return float(text)
    if _COMPOUND.fullmatch(text):
        return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number with s, m, h or d, e.g. 24h")
    number, unit = match.groups()
    if unit is None:
        raise ValueError(f"{text!r} has no unit; write {number}s, {number}m, {number}h or {number}d")
    return float(number) * _UNIT_SECONDS[unit]


def config_dir(path: Path | None) -> Path | None:
    """The directory relative paths in factory.yaml are taken from: the file's own, absolute; None for a pipe.

    Relative paths never depend on the current directory, so `state_dir: st` is one store for a systemd controller and
    every operator's shell alike. A pipe (`-c <(sops -d ...)`) has no directory of its own, so there relative paths keep
    meaning the current directory.
    """
    if path is None or not path.is_file():
        return None
    return Path(os.path.abspath(path.parent))


def from_config_dir(value: str | None, base: Path | None) -> str | None:
    """A path written in factory.yaml, a relative one joined to `base` (see config_dir); `~` and absolute as written."""
    if value is None or base is None or value.startswith("~") or os.path.isabs(value):
        return value
    return str(base / value)


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


#: The longest time any setting in seconds may hold: a day, like the CLI's `--timeout` (MAX_TIMEOUT_S there); more
#: overflows the platform's time_t once turned into a deadline, and no node answer is worth waiting longer for.
MAX_SECONDS = 86400.0
#: The largest facility power budget: 10 GW, beyond any site; `.inf` or 1e300 is a typo, not a budget.
MAX_BUDGET_KW = 10_000_000.0


def _finite_number(value: object, low: float, high: float, unit: str) -> float:
    """`value` as a float when it is a finite number (not a bool, not a string) in [low, high]; else a ValueError."""
    what = f"must be a finite number of {unit} between {exact_number(low)} and {exact_number(high)}"
    if isinstance(value, str):  # YAML 1.1 reads `1e3` (no dot) as text, and "30" is quoted: a number all the same
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{what}, not the text {value!r} (write a plain number such as 30)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what}, not {value!r}")
    number = float(value)
    if not (math.isfinite(number) and low <= number <= high):  # NaN fails every comparison
        raise ValueError(f"{what}, not {exact_number(number)}")  # never rounded: "not 1e+06" contradicted itself
    return number


def seconds(low: float, high: float = MAX_SECONDS) -> BeforeValidator:
    """A field in seconds: a finite number from `low` to `high` (YAML's `.inf` and `.nan` are refused)."""
    return BeforeValidator(lambda value: _finite_number(value, low, high, "seconds"))


#: The longest duration a factory.yaml setting takes (retentions, walltime): ten years, far past any real need;
#: `99999999999d` would overflow a date once added to now.
MAX_DURATION_S = 3650 * 86400.0


def bounded_duration(value: object) -> str:
    """`value` when it is a duration (see parse_duration) of at most MAX_DURATION_S; else a ValueError.

    A YAML number (`raw_retention: 90`) is refused for its missing unit, as `"90"` is, not as "not a string".
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"must be a duration such as 90s, 15m, 24h or 30d, not {value!r}")
    text = value if isinstance(value, str) else exact_number(value)
    if parse_duration(text) > MAX_DURATION_S:
        raise ValueError(f"{text!r} is longer than 3650d (10 years), the longest duration factory.yaml takes")
    return text


def _port(value: object) -> int:
    """A TCP port: a whole number 1-65535 written as one (`true` and `"22"` are not ports)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be a whole number from 1 to 65535 (e.g. 22), not {value!r}")
    return value


def _restarts(value: object) -> int:
    """A restart count: a whole number 0-1000 written as one (`true` and `"3"` are not counts)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1000:
        raise ValueError(f"must be a whole number of restarts from 0 to 1000, not {value!r}")
    return value


def _not_blank(value: str) -> str:
    """An empty `host: ""` or `user: ""` would silently mean the default; say so instead."""
    if not value.strip():
        raise ValueError("must not be empty; remove the key to use the default")
    return value


def _no_nul(value: str) -> str:
    """A path or command with a NUL cannot be opened or run: refused at load, not as a ValueError of a later command."""
    if "\0" in value:
        raise ValueError("must not contain a NUL character")
    return value


#: What a node's `host` may be: a host name, an alias of ~/.ssh/config, an IPv4 or IPv6 address (no brackets).
#: A host name, alias or address; an IPv6 address may name its zone (`fe80::1%eth0`), `%` being no shell character.
_HOST = re.compile(r"[A-Za-z0-9_:][A-Za-z0-9_.:-]*(?:%[A-Za-z0-9_.-]+)?", re.ASCII)


#: `$NAME` or `${NAME}`: how a shell or systemd would name an environment variable; factory.yaml takes it as text.
_VARIABLE = r"\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)"


def variable_problem(value: str) -> str | None:
    """Why `value` will not mean what it says: it names an environment variable nothing expands, or None."""
    found = re.search(_VARIABLE, value)
    if found is None:
        return None
    home = " (a leading `~` is your home directory)" if found.group() in ("$HOME", "${HOME}") else ""
    return f"holds `{found.group()}`: factory.yaml does not expand environment variables; write its value{home}"


def host_problem(host: str) -> str | None:
    """Why `host` is no host name or address, or None.

    ~/.ssh/config's `Match exec` commands get the host substituted for %h and %n and run in a shell, by paramiko
    as by ssh: `127.0.0.1$(touch /tmp/x)` would run `touch`. OpenSSH (9.6 and later) refuses shell metacharacters in
    a host name given on its command line for that reason; factoryctl refuses all but these characters.
    """
    if _HOST.fullmatch(host):
        return None
    if host.startswith("[") and host.endswith("]") and _HOST.fullmatch(host[1:-1]):
        return f"an IPv6 address is written without brackets: {host[1:-1]!r}, not {host!r}"
    shown = repr(host) if len(host) <= 80 else f"{host[:80]!r}..."
    return (
        f"must be a host name or an address (letters, digits, '.', '-', '_' and ':'; an IPv6 address without "
        f"brackets, with its zone after '%' if it has one), not {shown}: a `Match exec` in ~/.ssh/config would pass it to a shell command"
    )


def _host_name(value: str) -> str:
    problem = host_problem(value)
    variable = variable_problem(value) if problem is not None else None
    if variable is not None:  # `${A_HOST}`: refused for its `$`, but the mistake is expecting it expanded
        problem = variable.replace("write its value", "write the host name or address")
    if problem is not None:
        raise ValueError(problem)
    return value


Port = Annotated[int, BeforeValidator(_port)]
NonEmpty = Annotated[str, AfterValidator(_not_blank)]
#: A file or program factoryctl opens or runs (`state_dir`, `known_hosts`, `identity_file`, `python`): no NUL.
PathText = Annotated[str, AfterValidator(_not_blank), AfterValidator(_no_nul)]
HostName = Annotated[str, AfterValidator(_not_blank), AfterValidator(_host_name)]
#: A duration setting: text with a unit (`24h`), at most MAX_DURATION_S.
Duration = Annotated[str, BeforeValidator(bounded_duration)]


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SshDefaults(Strict):
    """`ssh:` defaults applied to every node that does not set its own."""

    user: NonEmpty | None = Field(None, description="Login user (else ~/.ssh/config, else the local user).")
    identity_file: PathText | None = Field(
        None, description="Private key file (relative: to factory.yaml's directory); ssh-agent keys are tried too."
    )
    known_hosts: PathText = Field(
        "~/.ssh/known_hosts", description="Host keys are verified against this file (relative: to factory.yaml's)."
    )
    port: Port = Field(22, description="SSH port (1-65535).")
    python: PathText = Field("python3", description="Python interpreter on the nodes that runs the agent.")
    connect_timeout_s: Annotated[float, seconds(0.1)] = Field(
        10.0,
        description="TCP, banner and auth timeout, in seconds (0.1-86400); the key exchange after the banner gets twice it ([ssh](ssh.md)).",
    )
    keepalive_s: Annotated[float, seconds(1, 3600)] = Field(
        15.0,
        description="Seconds between liveness checks of a connection (1-3600), as OpenSSH's ServerAliveInterval: a "
        "check not answered within this, or connect_timeout_s if longer, closes the connection, so a link that went "
        "down is found within about keepalive_s + max(keepalive_s, connect_timeout_s): lower both to notice sooner "
        "([ssh](ssh.md)).",
    )
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
    gpus: int | None = Field(
        None, ge=1, le=64, strict=True, description="Simulated GPUs (else the node's `gpus`, else 8)."
    )
    seed: int = Field(0, strict=True, description="Noise seed, so runs repeat.")
    unsupported: tuple[str, ...] = Field((), description="GPU fields the simulated driver reports as not supported.")
    setters_need_root: bool = Field(
        False,
        strict=True,
        description="The simulated driver refuses power-limit changes unless the agent runs as root (euid 0), "
        "as real NVML does (`NVMLError_NoPermission`); off, any user may set them.",
    )

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

    host: HostName | None = Field(
        None,
        description="Host name or address (defaults to the node's name; letters, digits, `.`, `-`, `_` and `:`, and "
        "an IPv6 zone after `%`: `fe80::1%eth0`); a ~/.ssh/config alias works. Never decides transport.",
    )
    port: Port | None = Field(None, description="SSH port, 1-65535 (else ssh.port).")
    user: NonEmpty | None = Field(None, description="SSH user (else ssh.user).")
    identity_file: PathText | None = Field(
        None, description="SSH key (else ssh.identity_file; relative: to factory.yaml's directory)."
    )
    transport: Literal["ssh", "local"] = Field(
        "ssh",
        description="`ssh` (default) or `local` (this machine: the agent runs as a child process; at most 4 per CPU "
        "start at once, so a node's `--timeout` counts from its own start, not from the queue of the others).",
    )
    python: PathText | None = Field(None, description="Python on the node (else ssh.python).")
    rack: str | None = Field(None, description="Rack name, used by topology-aware placement.")
    labels: dict[str, str] = Field(default_factory=dict, description="Free labels for job constraints.")
    sim: Profile | SimSettings | None = Field(None, description="A profile name or a `sim:` mapping: simulated GPUs.")
    gpus: int | None = Field(
        None, ge=0, le=64, strict=True, description="GPU count (for simulated nodes and scheduling)."
    )


class ControllerSettings(Strict):
    """`controller:` the daemon's timers and the store's retention."""

    interval_s: Annotated[float, seconds(0.05, 3600)] = Field(
        1.0, description="Telemetry sampling interval, in seconds (0.05-3600)."
    )
    raw_retention: Duration = Field(
        "6h", description="How long raw samples are kept (at least two intervals and three minutes)."
    )
    rollup_retention: Duration = Field("30d", description="How long 1-minute rollups are kept.")
    slow_interval_s: Annotated[float, seconds(0.05, 3600)] = Field(
        5.0,
        description="Temperature, ECC, memory and energy are read by the agents and stored this often, in seconds "
        "(0.05-3600).",
    )
    reconnect_max_s: Annotated[float, seconds(0.1)] = Field(
        30.0, description="Longest wait between reconnect attempts to a node, in seconds (0.1-86400)."
    )

    @property
    def raw_kept_s(self) -> float:
        """Seconds raw samples are kept: `raw_retention`, but never less than two intervals and three minutes.

        A minute rolled up before its next sample arrived has its covered time settled by a later rollup, from its
        raw rows and those of the two samples before it (`store.samples`): pruned sooner, each minute kept its first
        guess, and a 300 s interval kept for 300 s billed a fifth of the energy it drew.
        """
        return max(parse_duration(self.raw_retention), 2 * self.interval_s + 180.0)


class SchedulerSettings(Strict):
    """`scheduler:` the gang scheduler's defaults."""

    default_walltime: Duration = Field("24h", description="Walltime of a job submitted without one.")
    preemption: bool = Field(
        False,
        description="Let a higher-priority job that does not fit stop lower-priority running jobs: SIGTERM, "
        "`preemption_grace` to checkpoint, SIGKILL, requeued (the passes do it; `sched simulate --preemption` "
        "replays it).",
    )
    preemption_grace: Duration = Field(
        "5m",
        description="How long a preempted job has between SIGTERM and SIGKILL to checkpoint, at most 1d (as"
        " `sched simulate --grace`).",
    )
    interval: Duration = Field(
        "10s", description="How often the controller makes a scheduling pass (as `sched tick`); 0s turns it off."
    )
    max_restarts: Annotated[int, BeforeValidator(_restarts)] = Field(
        3, description="How often a gang is requeued after one of its ranks failed before it fails for good (0-1000)."
    )

    @field_validator("preemption_grace")
    @classmethod
    def _grace_within_a_day(cls, value: str) -> str:
        """At most a day, as `sched simulate --grace`: a job needing more to checkpoint holds the GPUs it yields."""
        if parse_duration(value) > 86400:
            raise ValueError(f"{value!r} is longer than 1d, the longest grace a preempted job gets")
        return value


class PowerSettings(Strict):
    """`power:` grid-price capping."""

    facility_budget_kw: (
        Annotated[float, BeforeValidator(lambda value: _finite_number(value, 0.001, MAX_BUDGET_KW, "kW"))] | None
    ) = Field(
        None,
        description="Facility power budget across all GPUs, in kW (0.001-10000000; the dashboard shows power "
        "against it).",
    )
    policy: Annotated[str, AfterValidator(_no_nul)] | None = Field(
        None,
        description="Policy file (YAML) as `power simulate --policy` reads, relative to factory.yaml's directory: what"
        " `power plan`, `apply` and `status` apply.",
    )
    price_visibility: Literal["day-ahead", "realtime"] = Field(
        "day-ahead",
        description="When prices become known to the applied policy, as `power simulate --price-visibility`.",
    )
    curve: Annotated[str, AfterValidator(_no_nul)] | None = Field(
        None,
        description="Curve CSV the applied policy reads, as `power simulate --curve`, relative to factory.yaml's"
        " directory (default: the simulated driver's built-in A40 squad/bert_base curve); needs `curve_gpu` and"
        " `curve_workload`.",
    )
    curve_gpu: str | None = Field(None, description="The curve's GPU in `curve`, as `power simulate --gpu`.")
    curve_workload: str | None = Field(
        None, description="The curve's workload in `curve`, as `power simulate --workload`."
    )
    price_source: str | None = Field(
        None,
        description="Price source name as `price sources` lists it: `csv` or a plugin (the dashboard's price, and the"
        " prices of `price show`/`history` and `power simulate` without `--prices`); an unknown name is an error"
        " with a did-you-mean for those, and a warning of `config validate`.",
    )
    prices: Annotated[str, AfterValidator(_no_nul)] | None = Field(
        None,
        description="Argument passed to the price source (for `csv`: the file, relative to factory.yaml's"
        " directory; required).",
    )
    interval: Duration = Field(
        "5m",
        description="How often the controller's power loop sets every GPU back to the policy's plan (as `power"
        " apply`), besides at each price interval's start; needs `policy` and `price_source`; 0s turns it off"
        " (cron's `power apply` then).",
    )

    @model_validator(mode="after")
    def _curve_named(self) -> PowerSettings:
        """A curve file holds many GPUs and workloads: `curve` needs both names, and they mean nothing without it."""
        if self.curve is not None and (self.curve_gpu is None or self.curve_workload is None):
            raise ValueError(
                "power.curve needs power.curve_gpu and power.curve_workload (the curve's GPU and workload)"
            )
        if self.curve is None and (self.curve_gpu is not None or self.curve_workload is not None):
            raise ValueError("power.curve_gpu and power.curve_workload name a curve in power.curve, which is not set")
        return self


class FactoryFile(Strict):
    """The whole factory.yaml."""

    name: str = Field("factory", description="Factory name: keys the state dir and simulated GPUs.")
    state_dir: PathText | None = Field(
        None,
        description="Store and state (default ~/.local/state/factoryctl/<name>); a relative path is taken from "
        "factory.yaml's directory, whatever the current directory. An existing one is written in only if it is "
        "yours or root's and not writable by others unless sticky (docs/security.md).",
    )
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
