"""`factoryctl gpus [TARGET[/GPUS]]`: one row per GPU, every GPU field of docs/cli.md in JSON.

Each GPU also names the job holding it (`job_id`, `-o wide`'s JOB), read from the store's job records
(jobs/holders.py) with no further node call, as Slurm users see which job holds a GPU.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, INTERVAL_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION, WATCH_OPTION
from factoryctl.cli.render import Column, OutputFormat, limit_watts

if TYPE_CHECKING:
    from pathlib import Path

    from factoryctl.errors import NodeError
    from factoryctl.jobs.holders import GpuHolders
    from factoryctl.model.telemetry import NodeSample


def _mib_pair(item: dict[str, Any]) -> str:
    used, total = item.get("memory_used_mib"), item.get("memory_total_mib")
    if used is None or total is None:
        return "-"
    return f"{used / 1024:.0f}/{total / 1024:.0f} GiB"


GPU_COLUMNS = (
    Column("node", "NODE"),
    Column("index", "GPU"),
    Column("name", "NAME"),
    Column("utilization_pct", "UTIL%"),
    Column("memory", "MEMORY"),
    Column("power_w", "POWER W"),
    Column("power_limit_w", "CAP W", show=limit_watts),
    Column("temperature_c", "TEMP C"),
    Column("throttle_reasons", "THROTTLE"),
    Column("power_range", "RANGE W", wide_only=True),
    Column("energy_kj", "ENERGY kJ", wide_only=True),
    Column("sm_clock_mhz", "SM MHZ", wide_only=True),
    Column("ecc_uncorrected", "ECC", wide_only=True),
    Column("nprocs", "PROCS", wide_only=True),
    Column("job_id", "JOB", wide_only=True),
    Column("uuid", "UUID", wide_only=True),
)

#: `null_reasons` of `job_id` when the store holding the jobs could not be read: unknown, not "no job".
STORE_UNREADABLE = "store unreadable"


def gpu_fields() -> list[str]:
    """The keys of a GPU item (`GpuSample.as_json`, one per field): the CSV header of a listing with no GPUs."""
    from dataclasses import fields

    from factoryctl.model.telemetry import GpuSample

    return [f.name for f in fields(GpuSample)] + ["job_id"]


def gpu_items(
    samples: Sequence[NodeSample], gpus: list[int] | None, holders: GpuHolders | None = None
) -> list[dict[str, Any]]:
    """The listing items: one per GPU of every node that answered, with the job holding it (`job_id`).

    No `holders`: no job holds any GPU (the demo, whose simulated factory runs none). Holders that are unknown (the
    store could not be read) make every `job_id` null with the reason in `null_reasons`.
    """
    items = []
    for sample in samples:
        for gpu in sample.gpus:
            if gpus is None or gpu.index in gpus:
                item = gpu.as_json()
                item["job_id"] = holders.job_id(gpu.node, gpu.index) if holders is not None else None
                if holders is not None and holders.error is not None:
                    item["null_reasons"]["job_id"] = STORE_UNREADABLE
                items.append(item)
    return items


def _lost_name(name: str | None) -> str:
    """A lost GPU's NAME cell: said first (a narrow table cuts the end), with the name known from before (a store's)."""
    return "(GPU lost)" if name is None else f"(GPU lost) {name}"


def table_view(item: dict[str, Any]) -> dict[str, Any]:
    """A GPU item with the table's derived columns (memory pair, range, kJ, process count)."""
    low, high = item.get("power_limit_min_w"), item.get("power_limit_max_w")
    energy = item.get("energy_j")
    lost = "gpu_lost" in (item.get("null_reasons") or {}).values()
    return {
        **item,
        "name": _lost_name(item.get("name")) if lost else item.get("name"),
        "memory": _mib_pair(item),
        "power_range": f"{low:.0f}-{high:.0f}" if low is not None and high is not None else None,
        "energy_kj": energy / 1000 if energy is not None else None,
        "nprocs": None if item.get("processes") is None else len(item["processes"]),
    }


def holders_reader(store_path: Path, unknown: str) -> Callable[[], GpuHolders]:
    """Each redraw's GPU holders from the store (jobs/holders.py), read anew every call.

    A store that cannot be read is said on stderr once (not at every redraw of `--watch`), its sentence followed by
    `unknown`, what the listing cannot tell then.
    """
    from factoryctl.jobs.holders import read_holders

    warned = False

    def read() -> GpuHolders:
        nonlocal warned
        holders = read_holders(store_path)
        if holders.error is not None and not warned:
            warned = True
            sys.stderr.write(f"factoryctl: warning: {holders.error} {unknown}\n")
        return holders

    return read


def register(app: typer.Typer) -> None:
    """Add `gpus` to the root app."""

    @app.command("gpus", short_help="One row per GPU: utilization, memory, power, temperature.")
    def gpus_command(
        ctx: typer.Context,
        target: str = context.GPU_TARGET_ARG,
        output: OutputFormat = OUTPUT_OPTION,
        no_header: bool = NO_HEADER_OPTION,
        watch: bool = WATCH_OPTION,
        interval: float = INTERVAL_OPTION,
        timeout: float = context.TIMEOUT_OPTION,
        fanout: int = FANOUT_OPTION,
    ) -> None:
        """One row per GPU: utilization, memory, power against its cap, temperature, throttling."""
        from factoryctl.cli.watch_poll import asker
        from factoryctl.config import parse_gpu_target

        config = context.load(ctx)
        node_part, gpu_indexes = parse_gpu_target(target)
        nodes = config.resolve_target(node_part)
        # with --watch a node that does not answer must not hold the others' redraws (watch_poll.py)
        ask = asker(config, nodes, timeout, fanout, context.global_options(ctx)[1], interval if watch else None)
        holders = holders_reader(config.store_path, "Which job holds each GPU is unknown (JOB -).")

        def produce() -> tuple[list[dict[str, Any]], list[NodeError]]:
            result = ask()
            answered = [s for s in result.samples if s.state != "down"]
            items = gpu_items(answered, gpu_indexes, holders())
            if gpu_indexes is not None and answered and not items:
                from factoryctl.errors import UsageError

                raise UsageError(
                    f"no node of `{node_part}` has GPU {','.join(map(str, gpu_indexes))}.",
                    f"run `factoryctl gpus {node_part}` to see their GPUs.",
                )
            if output in (OutputFormat.table, OutputFormat.wide):
                items = [table_view(i) for i in items]
            return items, result.errors

        from factoryctl.cli.listing import show_listing

        raise typer.Exit(show_listing(produce, GPU_COLUMNS, output, no_header, watch, interval, gpu_fields()))
