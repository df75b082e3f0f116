"""What the nvidia-smi bridge asks nvidia-smi for, and how it reads the answer into the agent's GPU fields.

Apart from the bridge (transport/smi.py), which serves the protocol: the query's properties, the two names nvidia-smi
has had for the clock event reasons, and the parsing of `--format=csv,noheader,nounits` rows, where a missing value
is null with a reason (`[N/A]`, `[Not Supported]`, `[GPU is lost]`) and never invented.

Output nvidia-smi should never print is a ValueError, whatever is wrong with it, so the bridge answers the poll with
the driver's error and goes on: a CR inside a field (`csv.Error`, no ValueError) killed the stream's thread, and an
index no GPU has (`1e19`, read as the int 10**19) failed every store write of every node.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import Any

from factoryctl.agent.sampler import reason_names
from factoryctl.model.telemetry import MAX_GPU_INDEX

#: (nvidia-smi --query-gpu property, GPU field, type); the docstring of each GPU field names the same property.
QUERY: tuple[tuple[str, str, type], ...] = (
    ("index", "index", int),
    ("uuid", "uuid", str),
    ("name", "name", str),
    ("utilization.gpu", "utilization_pct", float),
    ("memory.used", "memory_used_mib", float),
    ("memory.total", "memory_total_mib", float),
    ("power.draw", "power_w", float),
    ("enforced.power.limit", "power_limit_w", float),
    ("power.min_limit", "power_limit_min_w", float),
    ("power.max_limit", "power_limit_max_w", float),
    ("power.default_limit", "power_limit_default_w", float),
    ("temperature.gpu", "temperature_c", float),
    ("clocks.sm", "sm_clock_mhz", float),
    ("clocks_event_reasons.active", "throttle_reasons", str),
    ("ecc.errors.uncorrected.volatile.total", "ecc_uncorrected", int),
)
#: The clock event reasons' property by its two names. nvidia-smi before driver R535 knows only the second, and
#: refuses the whole query for the first ("not a valid field"); R535 renamed it and still takes the old name. A bridge
#: asks for the first, and once a node's nvidia-smi refuses the name asked for, for the other from then on.
REASON_NAMES = ("clocks_event_reasons.active", "clocks_throttle_reasons.active")
#: GPU fields nvidia-smi's query interface does not offer.
NOT_QUERIED = ("energy_j", "temperature_slowdown_c", "processes")
_MISSING = ("[N/A]", "N/A", "[Not Supported]", "Not Supported", "[Unknown Error]", "")


def _value(raw: str, kind: type) -> tuple[Any, str | None]:
    text = raw.strip()
    if text == "[GPU is lost]":
        return None, "gpu_lost"
    if text in _MISSING:
        return None, "not supported" if "Supported" in text else "not available"
    if kind is str:
        return text, None
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):  # also "nan" and "inf", which float() reads and no JSON line can carry
        return None, f"unreadable value {text!r}"
    return (int(number) if kind is int else number), None


def parse_query(text: str) -> list[dict[str, Any]]:
    """GPU dicts (agent sample shape, without `node`) from `--format=csv,noheader,nounits` output.

    ValueError for output that is not such rows (see the module docstring).
    """
    try:
        return _parse_rows(csv.reader(io.StringIO(text), skipinitialspace=True))
    except csv.Error as exc:  # a CR or NUL inside a field, a field past csv's size limit
        raise ValueError(f"unreadable CSV: {exc}") from None


def _parse_rows(rows: Iterable[list[str]]) -> list[dict[str, Any]]:
    gpus: list[dict[str, Any]] = []
    for row in rows:
        if not row:
            continue
        if len(row) != len(QUERY):
            raise ValueError(f"expected {len(QUERY)} columns, got {len(row)}: {row!r}")
        gpu: dict[str, Any] = {}
        reasons: dict[str, str] = {}
        for (_, key, kind), raw in zip(QUERY, row, strict=True):
            value, reason = _value(raw, kind)
            if key == "throttle_reasons" and value is not None:
                bits = int(value, 16) if value.lower().startswith("0x") else int(value)
                value = reason_names(bits)
            gpu[key] = value
            if reason:
                reasons[key] = reason
        for key in NOT_QUERIED:
            gpu[key] = None
            reasons[key] = "not available through nvidia-smi"
        if gpu.get("index") is None:  # a lost GPU prints `[GPU is lost]` even as its index: rows come in index order
            gpu["index"] = len(gpus)
            reasons.pop("index", None)
        elif not _is_index(row[0]):
            raise ValueError(f"GPU index {row[0].strip()!r:.40} is not one a GPU has (0 to {MAX_GPU_INDEX})")
        gpu["null_reasons"] = reasons
        gpus.append(gpu)
    return gpus


def _is_index(raw: str) -> bool:
    """Whether nvidia-smi's index column is a GPU index: a whole number from 0 to MAX_GPU_INDEX (not `1e19`, `2.5`)."""
    text = raw.strip()
    return text.isascii() and text.isdigit() and int(text) <= MAX_GPU_INDEX


#: The query's format (with `query_arg`): rows of bare values, as `parse_query` reads them.
QUERY_FORMAT = ("--format=csv,noheader,nounits",)


def query_arg(reasons_name: str) -> str:
    """`--query-gpu=` every property of QUERY, the clock event reasons by `reasons_name`."""
    return "--query-gpu=" + ",".join(reasons_name if name in REASON_NAMES else name for name, _, _ in QUERY)
