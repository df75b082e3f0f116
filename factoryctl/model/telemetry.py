r"""Telemetry snapshots: one `GpuSample` per GPU and one `NodeSample` per node, frozen so the UI can share them.

Field names are the JSON contract of `factoryctl gpus` / `nodes` (docs/cli.md, GPU and Node fields): SI units in the
name, `None` when the driver does not support a value, with the reason in `null_reasons`. A value from the wire that
is not what its field holds (a string or a boolean where a number goes, NaN, infinity) is `None` too, with the reason
`invalid`: one bad value from one agent must not reach the store, where it would fail every other node's rows.
A sample's time must be one a clock can show (1970 to 9999), or the sample is refused; so must each GPU's index be
one a node can have (0 to MAX_GPU_INDEX).

Text from a node (GPU names, UUIDs, process names, reasons, the agent's version) reaches the operator's terminal:
its control characters (C0, DEL, C1: ESC sequences, CR, newlines) are shown as `\x1b`-style escapes here, where it
enters the model, so no table or dashboard row can be made to clear the screen or retitle the window; and its
bidirectional controls (U+202E ...) as `\u202e`, so none can reorder what a row shows. A lone surrogate (JSON's
`\udcff`) is written `\xff`, as text: SQLite and every UTF-8 writer refuse it, and one node's text failed them all.

A measured number no GPU can produce (1e308 W, 10**30 MiB, -300 °C: `_PLAUSIBLE` holds each field's bounds) is
`invalid` too: the node's sums and the store's integer columns could not hold it, and no driver reports it. So is a
host reading no host can show (CPU past 100 %, a negative load, 1e300 MiB in use): `HostSample` has no reasons to
name, so it is just `None`, however the sample was made (the wire, the store's older rows, code). A GPU process whose
pid is no pid (not an int, or outside 0 to 2**31 - 1) is left out, as one with no pid is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from factoryctl.model.timefmt import iso_utc

GPU_FIELDS = (
    "node",
    "index",
    "uuid",
    "name",
    "utilization_pct",
    "memory_used_mib",
    "memory_total_mib",
    "power_w",
    "power_limit_w",
    "power_limit_min_w",
    "power_limit_max_w",
    "power_limit_default_w",
    "energy_j",
    "temperature_c",
    "temperature_slowdown_c",
    "sm_clock_mhz",
    "throttle_reasons",
    "ecc_uncorrected",
    "processes",
    "null_reasons",
)


@dataclass(frozen=True)
class GpuProcess:
    """A process using a GPU (`nvidia-smi --query-compute-apps=pid,used_memory`)."""

    pid: int
    used_memory_mib: float | None = None
    name: str | None = None


@dataclass(frozen=True)
class XidEvent:
    """An XID error the driver reported for a GPU (`nvidia-smi -q` shows the latest; dmesg shows them all)."""

    xid: int
    time: float | None = None


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one instant. Each field's docstring names its `nvidia-smi --query-gpu` equivalent."""

    node: str
    index: int
    uuid: str | None = None  # uuid
    name: str | None = None  # name
    utilization_pct: float | None = None  # utilization.gpu
    memory_used_mib: float | None = None  # memory.used
    memory_total_mib: float | None = None  # memory.total
    power_w: float | None = None  # power.draw
    power_limit_w: float | None = None  # enforced.power.limit
    power_limit_min_w: float | None = None  # power.min_limit
    power_limit_max_w: float | None = None  # power.max_limit
    power_limit_default_w: float | None = None  # power.default_limit
    energy_j: float | None = None  # total_energy_consumption (mJ / 1000)
    temperature_c: float | None = None  # temperature.gpu
    temperature_slowdown_c: float | None = None  # temperature.gpu.tlimit (slowdown threshold)
    sm_clock_mhz: float | None = None  # clocks.sm
    throttle_reasons: tuple[str, ...] = ()  # clocks_event_reasons.*
    ecc_uncorrected: int | None = None  # ecc.errors.uncorrected.volatile.total
    processes: tuple[GpuProcess, ...] = ()
    null_reasons: dict[str, str] = field(default_factory=dict)
    xid_events: tuple[XidEvent, ...] = ()  # recent XIDs seen by the agent, oldest first (docs/cli.md)

    def as_json(self) -> dict[str, Any]:
        """The JSON object of one `gpus` listing item, keys in the order of docs/cli.md's GPU fields.

        A list the driver did not report (`throttle_reasons`, `processes` of a lost GPU: named in `null_reasons`) is
        null, not an empty list that would claim "none"; XID times are ISO-8601 like every other time.
        """
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "throttle_reasons":
                value = None if f.name in self.null_reasons else list(value)
            elif f.name == "processes":
                value = None if f.name in self.null_reasons else [vars(p).copy() for p in value]
            elif f.name == "xid_events":
                value = [{"xid": e.xid, "time": iso_utc(e.time)} for e in value]
            elif f.name == "null_reasons":
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_json(cls, node: str, data: dict[str, Any]) -> GpuSample:
        """Build from the agent's wire form (unknown keys ignored, so agents may be newer).

        A value of the wrong type becomes `None` with the reason `invalid` (see the module docstring); only an entry
        that is not an object, or has no integer `index` from 0 to MAX_GPU_INDEX, is refused (ValueError), since it
        names no GPU at all: the session then fails as malformed, the node's error.
        This runs for every GPU of every sample (the agent session reader's main cost), so each key is looked up
        once and the checked values become the instance's attributes as they are (`_checked_gpu`), not through the
        frozen `__init__`'s one `object.__setattr__` call per field: every field is checked here, and GpuSample has
        no `__post_init__` for that to skip (tests/telemetry/test_gpu_from_json_build.py holds both).
        """
        if not isinstance(data, dict):
            raise ValueError(f"a GPU entry is not an object: {data!r:.80}")
        index = data.get("index")
        if type(index) is not int:
            raise ValueError(f"a GPU entry has no integer index: {index!r:.80}")
        if not 0 <= index <= MAX_GPU_INDEX:
            raise ValueError(f"a GPU entry's index {index!r:.40} is not a GPU index (0 to {MAX_GPU_INDEX})")
        sample = object.__new__(cls)
        sample.__dict__.update(_checked_gpu(node, index, data))
        return sample


def _checked_gpu(node: str, index: int, data: dict[str, Any]) -> dict[str, Any]:
    """Every GpuSample attribute from one wire GPU entry, in field order (`GpuSample.from_json`'s checks)."""
    get = data.get
    values = {"node": node, "index": index, **_GPU_DEFAULTS}
    reasons = _null_reasons(get("null_reasons"))
    for key, lowest, highest in _NUMBER_RANGES:  # the hot loop: a number in range passes without a call
        value = get(key)
        if value is None:
            continue
        kind = type(value)
        if (kind is int or kind is float) and lowest <= value <= highest:  # NaN compares false; a bool is no int
            values[key] = value
        elif key not in reasons:
            reasons[key] = INVALID
    for key, check in _OTHER_CHECKS:
        value = get(key)
        if value is not None:
            values[key] = checked = check(value)
            if checked is None and key not in reasons:
                reasons[key] = INVALID
    throttle = get("throttle_reasons")
    if throttle:  # none (null, [], or any other falsy value) is no reasons, with no null reason
        values["throttle_reasons"] = names = _strings(throttle)
        if not names or not isinstance(throttle, _SEQUENCES):  # stray non-names are just dropped
            reasons.setdefault("throttle_reasons", INVALID)
    procs = get("processes")
    if procs:
        values["processes"] = tuple(
            GpuProcess(p["pid"], _memory_or_none(p.get("used_memory_mib")), _text_or_none(p.get("name")))
            for p in _objects(procs)
            if _is_pid(p.get("pid"))
        )
    xids = get("xid_events")
    if xids:
        values["xid_events"] = tuple(
            XidEvent(e["xid"], unix_time_or_none(e.get("time"))) for e in _objects(xids) if type(e.get("xid")) is int
        )
    values["null_reasons"] = reasons
    return values


#: The null reason of a value the agent sent that its field cannot hold (a string for a number, NaN, ...).
INVALID = "invalid"

#: The largest GPU index a node may report: NVML numbers a node's GPUs from 0, and the largest boards have 8 or 16.
#: Far above factoryctl's 64 per node (targets.MAX_GPUS), so a node with more is still shown, just not addressable;
#: an index past it (10**19 from a lying agent, nvidia-smi printing `1e19`) is a malformed sample, never a store row,
#: where 10**19 failed the write of every node's samples.
MAX_GPU_INDEX = 1023

#: The last Unix time a clock can show (9999-12-31T23:59:59Z); far inside what the store's milliseconds hold.
MAX_UNIX_TIME = 253_402_300_799.0

#: The JSON lists (and tuples, for samples built in code); a tuple of types, as a `list | tuple` union is built anew
#: every time the expression runs.
_SEQUENCES = (list, tuple)

#: Unicode's bidirectional controls (its Bidi_Control property: ALM, LRM, RLM, the embeddings and overrides
#: U+202A-202E, the isolates U+2066-2069): invisible, they reorder the text after them, so `fake\u202erow` shows as
#: `fakewor` and a name can pass for another, or a table cell can look like the next one (Trojan Source).
BIDI_CONTROLS = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
#: C0 control characters, DEL and C1 control characters, each to its visible `\x..` escape; bidi controls to `\u....`.
_CONTROL_ESCAPES = {
    **{code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    **{code: f"\\u{code:04x}" for code in BIDI_CONTROLS},
}


def escape_controls(text: str) -> str:
    r"""`text` with each control character (C0 including tab and newline, DEL, C1) written as a visible `\x1b`.

    For text that came from elsewhere (a node, the environment) and is printed to a terminal: an ESC sequence could
    clear the screen or set the window title, and a CR or newline would break a table's rows. Bidirectional controls
    (BIDI_CONTROLS) are written as `\u202e`: they would reorder what follows them. Printable text is returned as it
    is (the fast path: Python counts no control, bidi ones included, as printable), and an escaped text escapes to
    itself, so applying it twice is harmless.

    A lone surrogate, which no UTF-8 writer (SQLite, the metrics page, a terminal) can encode, is written as text
    (`surrogates_as_text`): JSON's `"\udcff"` from an agent decodes to one, and one node's GPU name holding it
    failed the store's every write and the metrics page, for every node. Python counts no surrogate printable, so
    none takes the fast path.
    """
    return text if text.isprintable() else surrogates_as_text(text.translate(_CONTROL_ESCAPES))


def surrogates_as_text(text: str) -> str:
    r"""`text` with each lone surrogate written as text: `\xff` for an undecodable byte, U+FFFD for any other.

    `\udc80` to `\udcff` are what `surrogateescape` makes of a byte that is not UTF-8 (argv, the environment, a
    node's file name or process name decoded so), so the byte is shown; any other is no byte, only a broken pair.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(_surrogate_as_text(c) if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return text


def _surrogate_as_text(char: str) -> str:
    code = ord(char)
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else "\ufffd"


def unix_time_or_none(value: object) -> float | None:
    """`value` as Unix seconds when it is a finite number between 1970 and the end of 9999, else None."""
    number = plausible_or_none(value, 0, MAX_UNIX_TIME)
    return None if number is None else float(number)


def number_or_none(value: object) -> float | int | None:
    """`value` when it is a finite number (JSON's int or float; a boolean is not one), else None."""
    if type(value) is int:
        return value
    if type(value) is float and math.isfinite(value):
        return value
    return None


def plausible_or_none(value: object, lowest: float, highest: float) -> float | int | None:
    """`value` when it is a finite number (`number_or_none`) from `lowest` to `highest`, else None.

    An int of any size compares with the float bounds exactly (10**400 is past them, not an OverflowError).
    """
    number = number_or_none(value)
    return number if number is not None and lowest <= number <= highest else None


def _count_or_none(value: object) -> int | None:
    """A whole number from 0 to MAX_COUNT (ECC counts), else None."""
    number = plausible_or_none(value, 0, MAX_COUNT)
    if isinstance(number, float):
        return int(number) if number.is_integer() else None
    return number


def _memory_or_none(value: object) -> float | int | None:
    """A process's memory in MiB, from 0 to MAX_MEMORY_MIB, else None."""
    return plausible_or_none(value, 0.0, MAX_MEMORY_MIB)


def _is_pid(value: object) -> bool:
    """Whether `value` is a process id: an int (a bool or a float is none) from 0 to MAX_PID."""
    return type(value) is int and 0 <= value <= MAX_PID


def _text_or_none(value: object) -> str | None:
    """A string, its control characters escaped (`escape_controls`), else None."""
    return escape_controls(value) if isinstance(value, str) else None


def _strings(value: object) -> tuple[str, ...]:
    """The strings of a JSON list, control characters escaped (anything else is no strings)."""
    if not isinstance(value, _SEQUENCES):
        return ()
    return tuple([escape_controls(v) for v in value if isinstance(v, str)])  # a list: quicker than a generator


def _objects(value: object) -> list[dict[str, Any]]:
    """The objects of a JSON list (anything else is none)."""
    if not isinstance(value, _SEQUENCES):
        return []
    return [v for v in value if isinstance(v, dict)]


def _null_reasons(value: object) -> dict[str, str]:
    if not value or not isinstance(value, dict):  # the usual `{}` first: no comprehension to set up
        return {}
    return {
        escape_controls(k): escape_controls(v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str)
    }


#: The readings no GPU or host can produce are unknown (see the module docstring): each measured number's bounds.
#: Far past any board (the largest draw some 1.5 kW, run hot near 100 °C, hold 288 GB, clock 3 GHz), and small enough
#: that each, in the driver's milli-units, is an integer SQLite holds: 1e308 W would fail the node's sum and its row.
#: A host's memory has a GPU's bounds (the same keys), its CPU share a GPU's utilization's.
MAX_POWER_W = 10_000.0
MIN_TEMPERATURE_C = -273.15  # absolute zero
MAX_TEMPERATURE_C = 500.0
MAX_MEMORY_MIB = float(2**30)  # 1 PiB
MAX_ENERGY_J = 1e15  # 10 kW for 3,000 years
MAX_CLOCK_MHZ = 100_000.0
MAX_COUNT = 2**63 - 1  # an ECC count (or a sum's milliwatts): as SQLite's integers hold
MAX_LOAD = float(2**22)  # a host's load average: tasks running or waiting, never more than Linux's largest pid_max
MAX_PID = 2**31 - 1  # pid_t's largest (Linux's pid_max is at most 2**22)
_PLAUSIBLE: dict[str, tuple[float, float]] = {
    "utilization_pct": (0.0, 100.0),
    "memory_used_mib": (0.0, MAX_MEMORY_MIB),
    "memory_total_mib": (0.0, MAX_MEMORY_MIB),
    "power_w": (0.0, MAX_POWER_W),
    "power_limit_w": (0.0, MAX_POWER_W),
    "power_limit_min_w": (0.0, MAX_POWER_W),
    "power_limit_max_w": (0.0, MAX_POWER_W),
    "power_limit_default_w": (0.0, MAX_POWER_W),
    "energy_j": (0.0, MAX_ENERGY_J),
    "temperature_c": (MIN_TEMPERATURE_C, MAX_TEMPERATURE_C),
    "temperature_slowdown_c": (MIN_TEMPERATURE_C, MAX_TEMPERATURE_C),
    "sm_clock_mhz": (0.0, MAX_CLOCK_MHZ),
    "cpu_pct": (0.0, 100.0),
    "load_1m": (0.0, MAX_LOAD),
}
#: The measured numbers (the fields typed `float | None`) with their bounds: an int or float within them each, else
#: None with the reason `invalid` (NaN and infinity are never within). A KeyError here is a new field without bounds.
_NUMBER_RANGES = tuple((f.name, *_PLAUSIBLE[f.name]) for f in fields(GpuSample) if f.type == "float | None")
#: Every GpuSample field after `node` and `index` with its default (`null_reasons`, always set, has no default).
_GPU_DEFAULTS: dict[str, Any] = {
    f.name: None if f.default is MISSING else f.default for f in fields(GpuSample) if f.name not in ("node", "index")
}
#: The other copied keys that are checked, and how: the checked value, or None when the wire value is not one.
_OTHER_CHECKS: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("uuid", _text_or_none),
    ("name", _text_or_none),
    ("ecc_uncorrected", _count_or_none),
)


#: NVML's resolution for power and energy: it reports milliwatts and millijoules, 1000 to the watt or joule.
MILLI = 1000


def sum_in_units(values: Iterable[float | None], per_unit: int) -> float | None:
    """The sum of the given `values` counted in the source's own units (`per_unit` of them to one), None if none.

    Each value is a whole number of those units (NVML's milliwatts, divided by 1000 on the way in): summed as
    integers and divided once, the sum is the decimal the units add up to. Summed as floats, eight GPUs' watts
    gave `3206.3289999999997` in `nodes -o json` for 3206.329.

    Never raises: a value whose units are no integer SQLite could hold (NaN, infinity, 1e308 W, or not a number:
    none of which `GpuSample.from_json` lets in, but a sample built in code could hold one) is left out, as unknown.
    """
    units = [count for count in (_units(value, per_unit) for value in values) if count is not None]
    return sum(units) / per_unit if units else None


def _units(value: object, per_unit: int) -> int | None:
    """`value` as a whole number of its source's units, or None when it is no number or none SQLite could hold."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not abs(value) <= MAX_COUNT / per_unit:  # NaN fails too; a 400-digit int compares without becoming a float
        return None
    return round(value * per_unit)


def kwh_from_joules(joules: Iterable[float]) -> float:
    """Kilowatt-hours from joules: summed exactly (`math.fsum`), to NVML's millijoule, then divided once.

    `sum(joules) / 3.6e6` printed `0.3396186775000001` for 1,222,627,239 mJ, which is 0.3396186775 kWh exactly.
    """
    return round(math.fsum(joules) * MILLI) / (MILLI * 3_600_000)


def exact_product(a: float, b: float) -> float:
    """`a * b` as the decimals they print as multiply (0.3396186775 kWh x 0.2 is 0.0679237355, not ...5000001)."""
    from decimal import Decimal

    return float(Decimal(repr(a)) * Decimal(repr(b)))


#: The NodeSample fields holding text that came from a node (an agent's version, its stderr in `message`).
_NODE_TEXTS = ("agent_version", "backend", "error", "message")


@dataclass(frozen=True)
class HostSample:
    """Host metrics from psutil (or /proc when psutil is absent)."""

    cpu_pct: float | None = None
    memory_used_mib: float | None = None
    memory_total_mib: float | None = None
    load_1m: float | None = None

    def __post_init__(self) -> None:
        """A reading no host can show (outside its `_PLAUSIBLE` bounds, or no finite number) becomes None.

        Here rather than in `from_json` alone: the store re-reads its node rows with `HostSample(**host)`, so a row
        stored before the check (`"cpu_pct": 1e308`) is checked on the way out too. Used memory may exceed the
        total (each is read at its own instant); both are bounded.
        """
        for name, lowest, highest in _HOST_RANGES:
            value = getattr(self, name)
            if value is not None and plausible_or_none(value, lowest, highest) is None:
                object.__setattr__(self, name, None)  # frozen: the one place it is set

    @classmethod
    def from_json(cls, data: object) -> HostSample:
        """Build from the agent's wire form (unknown keys ignored); ValueError when it is not an object."""
        if not isinstance(data, dict):
            raise ValueError(f"its host is not an object: {data!r:.80}")
        return cls(**{name: data.get(name) for name, _, _ in _HOST_RANGES})


#: The host readings with their bounds (`HostSample.__post_init__`); a KeyError here is a new field without bounds.
_HOST_RANGES = tuple((f.name, *_PLAUSIBLE[f.name]) for f in fields(HostSample))


@dataclass(frozen=True)
class NodeSample:
    """One node at one instant: reachability, the agent that answered, and its GPUs."""

    node: str
    time: float  # unix seconds, UTC
    state: str = "up"  # up | degraded | down; the dashboard's also connecting | stale (no verdict yet, or old)
    agent_version: str | None = None
    backend: str | None = None  # nvml | sim | smi
    gpus: tuple[GpuSample, ...] = ()
    host: HostSample | None = None
    error: str | None = None  # error kind when not up
    message: str | None = None

    def __post_init__(self) -> None:
        """Refuse a time no clock can show (ValueError); escape control characters in the node's texts.

        Every way a sample is made (an agent's reply, the store, the dashboard's own "down" rows) passes here, so a
        sample from 31 billion years ahead cannot fail the store's batch for every node or the dashboard's clock, and
        an agent's stderr or version string cannot drive the terminal. NaN fails the comparison too.
        """
        if not 0 <= self.time <= MAX_UNIX_TIME:
            raise ValueError(f"its time {self.time!r:.40} is not a Unix time between 1970 and 9999")
        for name in _NODE_TEXTS:
            value = getattr(self, name)
            if isinstance(value, str) and not value.isprintable():
                object.__setattr__(self, name, escape_controls(value))  # frozen: the one place it is set

    @property
    def power_w(self) -> float | None:
        """Sum of the GPUs' power draw (to the driver's milliwatt), or None when no GPU reports it."""
        return sum_in_units([g.power_w for g in self.gpus], MILLI)

    @property
    def power_limit_w(self) -> float | None:
        """Sum of the GPUs' enforced power limits (to the driver's milliwatt)."""
        return sum_in_units([g.power_limit_w for g in self.gpus], MILLI)

    @property
    def hottest_temperature_c(self) -> float | None:
        """The hottest GPU's temperature."""
        values = [g.temperature_c for g in self.gpus if g.temperature_c is not None]
        return max(values) if values else None

    @property
    def healthy(self) -> bool:
        """No uncorrectable ECC error and no lost GPU reported."""
        if self.state == "down" or self.error is not None:
            return False
        return all(not g.ecc_uncorrected and "gpu_lost" not in g.null_reasons.values() for g in self.gpus)
