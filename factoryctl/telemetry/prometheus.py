"""Prometheus text exposition of the latest samples, with dcgm-exporter's metric and label names.

Dashboards and alerts written for NVIDIA's dcgm-exporter (`DCGM_FI_DEV_POWER_USAGE{gpu, UUID, device, modelName,
Hostname}` ...) work unchanged against `factoryctl metrics serve` as long as they use the metrics of `GPU_METRICS`
and those five labels (no `pci_bus_id`, no `DCGM_FI_DRIVER_VERSION`; `Hostname` is factory.yaml's node name:
docs/telemetry.md lists what is not exported); factoryctl's own node-level facts (reachability, drain, health) are
added under `factoryctl_`. A pure function of samples, so it is tested without a server.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Sequence

from factoryctl.model.telemetry import GpuSample, NodeSample


def _fb_free_mib(gpu: GpuSample) -> float | None:
    """Framebuffer memory free: total less used, as NVML's memory info (None unless both are known)."""
    if gpu.memory_total_mib is None or gpu.memory_used_mib is None:
        return None
    return gpu.memory_total_mib - gpu.memory_used_mib


#: (metric, type, help, GPU field or how to compute it, scale): dcgm-exporter's default counters NVML gives us.
GPU_METRICS: tuple[tuple[str, str, str, str | Callable[[GpuSample], float | None], float], ...] = (
    ("DCGM_FI_DEV_SM_CLOCK", "gauge", "SM clock frequency (in MHz).", "sm_clock_mhz", 1.0),
    ("DCGM_FI_DEV_GPU_TEMP", "gauge", "GPU temperature (in C).", "temperature_c", 1.0),
    ("DCGM_FI_DEV_SLOWDOWN_TEMP", "gauge", "Slowdown temperature threshold (in C).", "temperature_slowdown_c", 1.0),
    ("DCGM_FI_DEV_POWER_USAGE", "gauge", "Power draw (in W).", "power_w", 1.0),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", "gauge", "Enforced power limit (in W).", "power_limit_w", 1.0),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT_MIN", "gauge", "Minimum power limit (in W).", "power_limit_min_w", 1.0),
    ("DCGM_FI_DEV_POWER_MGMT_LIMIT_MAX", "gauge", "Maximum power limit (in W).", "power_limit_max_w", 1.0),
    (
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "counter",
        "Total energy consumption since boot (in mJ).",
        "energy_j",
        1000.0,
    ),
    ("DCGM_FI_DEV_GPU_UTIL", "gauge", "GPU utilization (in %).", "utilization_pct", 1.0),
    ("DCGM_FI_DEV_FB_FREE", "gauge", "Framebuffer memory free (in MiB).", _fb_free_mib, 1.0),
    ("DCGM_FI_DEV_FB_USED", "gauge", "Framebuffer memory used (in MiB).", "memory_used_mib", 1.0),
    (
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
        "counter",
        "Total number of double-bit volatile ECC errors.",
        "ecc_uncorrected",
        1.0,
    ),
)

#: The GPU fields exported as counters (`metrics serve` never serves one lower than before: cli/metrics.py).
COUNTER_FIELDS = tuple(field for _, kind, _, field, _ in GPU_METRICS if kind == "counter" and isinstance(field, str))

#: Metrics dcgm-exporter reports as whole numbers (DCGM's int64 fields): memory in MiB, energy in mJ, ECC counts.
WHOLE_METRICS = frozenset(
    {
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL",
    }
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def gpu_labels(gpu: GpuSample) -> str:
    """dcgm-exporter's labels: gpu, UUID, device, modelName, Hostname."""
    return _labels(
        (
            ("gpu", str(gpu.index)),
            ("UUID", gpu.uuid or ""),
            ("device", f"nvidia{gpu.index}"),
            ("modelName", gpu.name or ""),
            ("Hostname", gpu.node),
        )
    )


def _number(value: float) -> str:
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else str(int(value))


def is_lost(gpu: GpuSample) -> bool:
    """Whether the GPU fell off the bus (XID 79, or any read reporting it lost)."""
    return "gpu_lost" in gpu.null_reasons.values()


def _fault_lines(gpus: Sequence[GpuSample]) -> list[str]:
    """The last XID per GPU (dcgm-exporter's `DCGM_FI_DEV_XID_ERRORS`, a lost GPU's 79 included) and lost GPUs.

    A lost GPU reports no other value, so these two series are what alerts on it fire from.
    """
    lines: list[str] = []
    xids = [(g, g.xid_events[-1].xid) for g in gpus if g.xid_events]
    if xids:
        lines += [
            "# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.",
            "# TYPE DCGM_FI_DEV_XID_ERRORS gauge",
        ]
        lines += [f"DCGM_FI_DEV_XID_ERRORS{gpu_labels(g)} {xid}" for g, xid in xids]
    if gpus:
        lines += [
            "# HELP factoryctl_gpu_lost GPU fell off the bus (1) or answers (0).",
            "# TYPE factoryctl_gpu_lost gauge",
        ]
        lines += [f"factoryctl_gpu_lost{gpu_labels(g)} {int(is_lost(g))}" for g in gpus]
    return lines


def render(samples: Sequence[NodeSample], drained: Iterable[str] = ()) -> str:
    """The /metrics body for these node samples."""
    drained_set = set(drained)
    lines: list[str] = []
    gpus = [g for s in samples if s.state != "down" for g in s.gpus]
    for metric, kind, help_text, field, scale in GPU_METRICS:
        read = field if callable(field) else operator.attrgetter(field)
        rows = [(g, v * scale) for g in gpus if (v := read(g)) is not None and math.isfinite(v * scale)]
        if not rows:  # a NaN or infinite value is left out, as a null is: it cannot be a number of the exposition
            continue
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}"]
        whole = metric in WHOLE_METRICS
        lines += [f"{metric}{gpu_labels(g)} {_number(round(v) if whole else v)}" for g, v in rows]
    lines += _fault_lines(gpus)
    throttled = [(g, r) for g in gpus for r in dict.fromkeys(g.throttle_reasons)]  # a reason twice is one series
    if throttled:
        lines += [
            "# HELP factoryctl_gpu_clocks_event_reason Clock event (throttle) reasons active now (1).",
            "# TYPE factoryctl_gpu_clocks_event_reason gauge",
        ]
        lines += [
            f'factoryctl_gpu_clocks_event_reason{gpu_labels(g)[:-1]},reason="{_escape(r)}"}} 1' for g, r in throttled
        ]
    node_metrics: tuple[tuple[str, str, Callable[[NodeSample], float]], ...] = (
        (
            "factoryctl_node_up",
            "Node reachable: 1 up, 0.5 degraded, 0 down.",
            lambda s: {"up": 1.0, "degraded": 0.5}.get(s.state, 0.0),
        ),
        (
            "factoryctl_node_drained",
            "Node drained (kept off by the scheduler).",
            lambda s: 1.0 if s.node in drained_set else 0.0,
        ),
        ("factoryctl_node_healthy", "No uncorrectable ECC error and no lost GPU.", lambda s: 1.0 if s.healthy else 0.0),
    )
    for metric, help_text, value in node_metrics:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [f"{metric}{_labels((('Hostname', s.node),))} {_number(value(s))}" for s in samples]
    return "\n".join(lines) + "\n"
