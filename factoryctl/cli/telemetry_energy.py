"""`factoryctl telemetry energy`: GPU energy per node from the store, in kWh, with a cost at a flat price.

Energy is read from the store alone (`Store.energy`: the driver's energy counter, else integrated power), never from
a node. Every node of the target is a row: one with no reading in the window is `-` (null), never 0, and a warning
on stderr names it, with why when its only reading there is one (energy is measured between two). Registered on the
`telemetry` app by telemetry_history.py, after `history` and `export`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.nothing_stored import (
    ONCE_HINT,
    TELEMETRY_STORED_BY,
    note_no_store,
    once_text,
    open_if_stored,
    read_once,
)
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, emit, iso_utc, render_listing
from factoryctl.cli.telemetry import UNTIL_OPTION, time_window, window_text

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig

ENERGY_COLUMNS = (
    Column("node", "NODE"),
    Column("gpus", "GPUS"),
    Column("energy_kwh", "ENERGY kWh", show=lambda v: "-" if v is None else f"{v:.3f}"),
    Column("cost", "COST", show=lambda v: "-" if v is None else f"{round(v, 2) + 0.0:.2f}"),  # + 0.0: no -0.00
    Column("source", "SOURCE", wide_only=True),
    Column("from", "FROM", wide_only=True),
    Column("to", "TO", wide_only=True),
)
#: The keys of an energy item, in order (the CSV header; every node of the target is an item, with or without energy).
ENERGY_FIELDS = ("node", "gpus", "energy_kwh", "cost", "source", "from", "to", "per_gpu")
#: The order the parts of an energy `source` are named in (docs/telemetry.md): older history first, then `none`.
ENERGY_SOURCES = ("rollup", "counter", "power")


def node_energy_source(per_gpu: Iterable[str]) -> str:
    """A node's energy source from its GPUs': every part any GPU used, joined with `+` (`rollup+counter`).

    A GPU with no reading adds `none` last (`counter+none`): the node's total leaves it out, which a script summing
    the totals must be able to see.
    """
    parts = {part for source in per_gpu for part in source.split("+")}
    named = [part for part in ENERGY_SOURCES if part in parts] + sorted(parts.difference({*ENERGY_SOURCES, "none"}))
    return "+".join([*named, "none"] if "none" in parts or not named else named)


def _finite_price(value: float | None) -> float | None:
    """`--price-per-kwh`: any finite number (nan and inf made a cost of nan and broke -o json)."""
    if value is not None and not math.isfinite(value):
        from factoryctl.errors import UsageError

        raise UsageError(f"--price-per-kwh must be a finite number, not {value:g}.", "e.g. --price-per-kwh 0.25")
    return value


def energy(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    since: str = typer.Option("24h", "--since", help="How far back: a duration (24h, 7d) or an ISO-8601 time."),
    until: str | None = UNTIL_OPTION,
    price_per_kwh: float | None = typer.Option(
        None, "--price-per-kwh", callback=_finite_price, help="Flat price, to show a cost."
    ),
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """GPU energy per node from the store (the driver's energy counter, else integrated power), in kWh."""
    config = context.load(ctx)
    names = [n.name for n in config.resolve_target(target)]
    start, end = time_window(since, until)
    found, once = _read_energy(ctx, config, names, (start, end))
    items = [
        _energy_item(name, [(g, j, s) for n, g, j, s in found if n == name], price_per_kwh, (start, end))
        for name in names
    ]
    unread = [item["node"] for item in items if item["energy_kwh"] is None]
    _warn_no_energy([node for node in unread if node not in once], (start, end), until)
    if once:
        whose = "their" if len(once) > 1 else "its"
        said = once_text(once, window_text(start, end, until))
        sys.stderr.write(f"factoryctl: warning: {said}: {whose} energy is unknown, not 0; {ONCE_HINT}.\n")
    short = [item["node"] for item in items if item["energy_kwh"] is not None and item["source"].endswith("+none")]
    _warn_no_energy(short, (start, end), until, some_gpus=True)
    emit(render_listing(items, [], ENERGY_COLUMNS, output, no_header, ENERGY_FIELDS))


def _read_energy(
    ctx: typer.Context, config: FactoryConfig, names: list[str], window: tuple[float, float]
) -> tuple[list[tuple[str, int, float, str]], list[str]]:
    """Each GPU's stored energy in the window (`Store.energy`), and the nodes without any read only once in it.

    No store yet is no energy (a note says why); a node with one reading has none either: energy needs two.
    """
    store = open_if_stored(config)
    if store is None:
        note_no_store(ctx, config, "no stored energy", TELEMETRY_STORED_BY)
        return [], []
    try:
        found = store.energy(names, *window)
        read = {node for node, _, _, source in found if source != "none"}
        return found, read_once(store, [name for name in names if name not in read], window)
    finally:
        store.close()


def _energy_item(
    name: str, per_gpu: Sequence[tuple[int, float, str]], price_per_kwh: float | None, window: tuple[float, float]
) -> dict[str, Any]:
    """One node's energy row; a node with no stored GPU (never collected, never reached) is one with none read.

    Such a node was left out, so `energy s5 -o json` gave `[]` and a table silently lacked it: it is a row with
    `gpus` 0, source `none` and `energy_kwh` null (unknown, not 0), as a node whose GPUs have no reading.
    """
    import time

    from factoryctl.model.telemetry import exact_product, kwh_from_joules

    read = [j for _, j, source in per_gpu if source != "none"]  # a GPU with no reading has no amount, not 0
    kwh = kwh_from_joules(read) if read else None
    return {
        "node": name,
        "gpus": len(per_gpu),
        "energy_kwh": kwh,
        "cost": exact_product(kwh, price_per_kwh) if price_per_kwh is not None and kwh is not None else None,
        "source": node_energy_source(s for _, _, s in per_gpu),
        "from": iso_utc(window[0]),
        "to": iso_utc(min(window[1], time.time())),
        "per_gpu": [
            {"gpu": g, "energy_kwh": None if s == "none" else kwh_from_joules([j]), "source": s} for g, j, s in per_gpu
        ],
    }


def _warn_no_energy(
    nodes: Sequence[str], window: tuple[float, float], until: str | None, some_gpus: bool = False
) -> None:
    """Name on stderr the nodes with no energy reading in the window (`-` in the table, null in -o json).

    A warning about completeness, kept under -q like a listing cut short (events.py `_say_if_cut`): a nightly
    `-q energy -o csv` summed over nodes would otherwise read a node never collected as costing nothing. With
    `some_gpus`, the nodes are those with a reading from some GPUs only (a GPU lost all window): their total is
    the others' (source `...+none`).
    """
    if not nodes:
        return
    from factoryctl.model.folding import fold_nodes

    count, whose = (f" ({len(nodes)} nodes)", "their") if len(nodes) > 1 else ("", "its")
    which = f"some GPUs of {fold_nodes(nodes)}{count}" if some_gpus else f"{fold_nodes(nodes)}{count}"
    unknown = f"{whose} energy sums the other GPUs only" if some_gpus else f"{whose} energy is unknown, not 0"
    sys.stderr.write(
        f"factoryctl: warning: no stored energy reading for {which} {window_text(*window, until)}: {unknown}.\n"
    )
