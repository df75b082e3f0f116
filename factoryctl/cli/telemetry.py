"""`factoryctl telemetry`: the noun, `collect` (one sweep into the store), and the window the readers share.

The store-only commands (history, export, energy) live in telemetry_history.py and register on this app (see
`VERB_MODULES` in app.py); they never touch a node, so they answer from the store in milliseconds and import
neither paramiko nor pynvml. They and `events` / `audit` take their time window and read-only store from here
(`price` its times). Heavy imports stay inside the commands.
"""

from __future__ import annotations

import re
import signal
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import partial
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.options import FANOUT_OPTION, NO_HEADER_OPTION, OUTPUT_OPTION
from factoryctl.cli.render import Column, OutputFormat, iso_utc
from factoryctl.isotime import fromisoformat

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig
    from factoryctl.model.telemetry import NodeSample
    from factoryctl.store.rows import Event, NodeState
    from factoryctl.store.sqlite import Store, StoreError
    from factoryctl.telemetry.poll import PollResult

app = typer.Typer(no_args_is_help=True)

SINCE_OPTION = typer.Option("1h", "--since", help="How far back: a duration (90s, 15m, 1h, 7d) or an ISO-8601 time.")
UNTIL_OPTION = typer.Option(None, "--until", help="End of the window (default now): a duration ago or an ISO time.")


#: The earliest moment a `--since` duration may reach back to: 0001-01-01T00:00Z, where ISO-8601 times begin too;
#: `99999999999999999d` ago would overflow the store's millisecond times.
EARLIEST_S = datetime(1, 1, 1, tzinfo=timezone.utc).timestamp()
_BARE_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_when(text: str, now: float, option: str = "--since") -> float:
    """Unix time from a duration ago (`1h`) or an ISO-8601 timestamp (`2026-11-22T01:00:00Z`) given to `option`.

    A bare number is no duration (`--since 20261122` was 20,261,122 seconds ago): it is an ISO time when it reads as
    one (that date), else a usage error naming the units.
    """
    from factoryctl.config_schema import parse_duration
    from factoryctl.errors import UsageError

    try:
        seconds = parse_duration(text)
    except ValueError:
        return _iso_time(text, option)
    if now - seconds < EARLIEST_S:  # also `now - inf`, from a duration of 400 digits
        raise UsageError(
            f"{option} `{text}` reaches back before the year 1.",
            f"write a shorter duration (e.g. {option} 7d) or a time such as {option} 2026-11-22T01:00Z.",
        )
    return now - seconds


def _utc_suffix(text: str) -> str:
    """`text` with RFC 3339's `Z` (or `z`) written `+00:00` and a lowercase `t` as `T`: what fromisoformat reads."""
    date, t, clock = text.partition("t")
    text = f"{date}T{clock}" if t and date[:1].isdigit() else text
    return text[:-1] + "+00:00" if text[-1:] in ("Z", "z") else text


def _iso_time(text: str, option: str) -> float:
    """Unix time of an ISO-8601 timestamp (UTC when it names no offset); a usage error when `text` is none."""
    from factoryctl.errors import UsageError

    try:
        stamp = fromisoformat(_utc_suffix(text))  # Python 3.11's reading on 3.10 too (`20261122`, `+0000`)
    except ValueError:
        if _BARE_NUMBER.fullmatch(text.strip()):
            number = text.strip()
            raise UsageError(
                f"{option} `{text}` has no unit, so it is neither a duration nor an ISO-8601 time.",
                f"give a duration a unit, s, m, h or d (e.g. {option} {number}s or {option} {number}m), "
                f"or write a time such as {option} 2026-11-22T01:00Z.",
            ) from None
        raise UsageError(
            f"{option} `{text}` is neither a duration nor an ISO-8601 time.",
            f"write e.g. {option} 1h or {option} 2026-11-22T01:00Z.",
        ) from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=timezone.utc)
    return stamp.timestamp()


def time_window(since: str, until: str | None) -> tuple[float, float]:
    """(start, end) in unix seconds for `--since` / `--until` (end: now, inclusive)."""
    import time

    now = time.time()
    # `--until ''` is refused as `--since ''` is (it was taken as now)
    start, end = parse_when(since, now), parse_when(until, now, "--until") if until is not None else now + 1
    if end <= start:
        from factoryctl.errors import UsageError

        until_named = f"--until {until}" if until is not None else "now (the default --until)"
        raise UsageError(
            f"{until_named} is not after --since {since}: the window would be empty.",
            "give --until a later time than --since (or leave it out: until now).",
        )
    return start, end


def window_text(start: float, end: float, until: str | None) -> str:
    """The window asked, for a sentence: `since <start>`, or `from <start> until <end>` when `--until` was given."""
    return f"from {iso_utc(start)} until {iso_utc(end)}" if until is not None else f"since {iso_utc(start)}"


def open_history(config: FactoryConfig) -> Store:
    """The store, read-only (history never writes)."""
    from factoryctl.store.sqlite import Store

    return Store(config.store_path, readonly=True)


# ---------------------------------------------------------------------------------------------------- collect


COLLECT_COLUMNS = (
    Column("node", "NODE"),
    Column("state", "STATE"),
    Column("gpus", "GPUS"),
    Column("power_w", "POWER W"),
    Column("time", "TIME"),
)


@app.command("collect", short_help="One sweep of every node into the store.")
def collect(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    # Without --once it was refused, while its help offered --once as an ordinary option; there is no other mode.
    once: bool = typer.Option(
        False, "--once", help="Changes nothing: collect always takes one sweep (kept for cron lines that name it)."
    ),
    timeout: float = context.TIMEOUT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    fanout: int = FANOUT_OPTION,
) -> None:
    """One sweep of every node into the store, for cron and tests; `factoryctl controller run` collects continuously."""
    from factoryctl.cli.listing import show_listing
    from factoryctl.store.sqlite import Store
    from factoryctl.telemetry.poll import poll_nodes

    config = context.load(ctx)
    nodes = config.resolve_target(target)
    store = Store(config.store_path)
    _, quiet = context.global_options(ctx)
    stopped = partial(_store_stopped_sweep, config, store, len(nodes), quiet)
    result = poll_nodes(config, nodes, timeout, fanout, stopped=stopped)
    rows = _store_answered(config, store, result, len(nodes), quiet)
    if not quiet:
        sys.stderr.write(
            f"stored {rows} GPU samples from {len(_reached(result))} of {len(nodes)} nodes in {config.store_path}\n"
        )
    items = [_sweep_item(s) for s in result.samples]
    raise typer.Exit(show_listing(lambda: (items, result.errors), COLLECT_COLUMNS, output, no_header))


def _reached(result: PollResult) -> list[NodeSample]:
    """The samples of the nodes that answered with one: a node that gave no sample is not reached, whatever its state."""
    failed = {error.node for error in result.errors}
    return [s for s in result.samples if s.node not in failed]


def _store_stopped_sweep(config: FactoryConfig, store: Store, asked: int, quiet: bool, result: PollResult) -> None:
    """A sweep stopped (Ctrl-C, SIGTERM) before it was stored: store what had answered, within a few seconds.

    The stop then goes on to end the command as any stop does (exit 130, 143). Waiting for a store another writer
    holds is cut short (`stop_waiting_for_locks`), and rollups and retention are left to the next sweep; a store
    that refuses the samples is said on stderr, the stop still decides the exit status.
    """
    from factoryctl.store.lock_wait import stop_waiting_for_locks, wait_for_locks_again
    from factoryctl.store.sqlite import StoreError

    if not result.samples:  # stopped before any node answered: nothing to store, nothing to say
        store.close()
        return
    stop_waiting_for_locks()
    try:
        rows = _write_sweep(config, store, result, _standalone(config))
    except StoreError as exc:
        _say_not_stored(exc)
        return
    finally:
        store.close()
        wait_for_locks_again()
    if not quiet:
        _say_stored_when_stopped(config, rows, result, asked)


def _say_stored_when_stopped(config: FactoryConfig, rows: int, result: PollResult, asked: int) -> None:
    """The `stored ...` line of a stopped sweep: before every node answered, or as the answers were being stored."""
    if len(result.samples) < asked:
        why = "stopped before the others answered"
    else:
        why = "stopped as they were stored; rollups are left to the next sweep"
    sys.stderr.write(
        f"stored {rows} GPU samples from {len(_reached(result))} of {asked} nodes in {config.store_path} ({why})\n"
    )


def _say_not_stored(exc: StoreError) -> None:
    """Why a stopped sweep's write failed (its sentence says what was not saved); the stop decides the exit status."""
    sys.stderr.write(f"factoryctl: {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))


class _Storing:
    """A sweep being stored with the stops held: the stops that came meanwhile, and the GPU rows once committed."""

    def __init__(self) -> None:
        self.stops: list[int] = []
        self.rows: int | None = None

    def stop_asked(self, signum: int) -> None:
        """A stop during the write (a signal handler): noted, and the write's lock waits cut short; nothing raised."""
        from factoryctl.store.lock_wait import stop_waiting_for_locks

        if not self.stops:
            stop_waiting_for_locks()
        self.stops.append(signum)


def _store_answered(config: FactoryConfig, store: Store, result: PollResult, asked: int, quiet: bool) -> int:
    """Store the sweep every node answered (or failed) and close the store; returns the GPU rows stored.

    A stop (Ctrl-C, SIGTERM) during the write does not break into it, which rolled the whole sweep back: it only cuts
    the write's lock waits short, to the stopped sweep's few seconds (`stop_waiting_for_locks`). The transaction then
    commits, or (the store held by another writer all that time) stores nothing, and the command says which on stderr
    before it ends as the stop does (130, 143, 129). One during the rollups that follow rolls them back (the next
    sweep does them); one in the instant before the write was held stores the sweep as a stopped one.
    """
    from factoryctl.cli.signals import Terminated
    from factoryctl.store.held_signals import signals_routed
    from factoryctl.store.lock_wait import wait_for_locks_again
    from factoryctl.store.sqlite import StoreError

    storing, standalone = _Storing(), _standalone(config)
    try:
        with signals_routed(storing.stop_asked):
            try:
                storing.rows = _write_sweep(config, store, result, standalone)
            except StoreError as exc:
                if not storing.stops:
                    raise
                _say_not_stored(exc)
        if storing.stops:
            signal.raise_signal(storing.stops[0])  # the stop, as it comes to the command: the boundary raises it
        if standalone:
            _tidy(config, store)
    except (KeyboardInterrupt, Terminated):  # HungUp is a Terminated
        if storing.rows is None and not storing.stops:  # it came before the write was held
            _store_stopped_sweep(config, store, asked, quiet, result)
        elif storing.rows is not None and not quiet:
            _say_stored_when_stopped(config, storing.rows, result, asked)
        raise
    finally:
        store.close()
        if storing.stops:
            wait_for_locks_again()  # a process that runs on (the tests' in-process CLI)
    assert storing.rows is not None  # a StoreError without a stop was raised; with one, the stop was
    return storing.rows


def _standalone(config: FactoryConfig) -> bool:
    """Whether no controller runs on the store: the sweep then records states and events, and tidies (`_write_sweep`)."""
    from factoryctl.store.lock import controller_is_running

    return not controller_is_running(config.state_dir)


def _write_sweep(config: FactoryConfig, store: Store, result: PollResult, standalone: bool) -> int:
    """Write the reached nodes' samples in one transaction; returns the GPU rows stored.

    Without a live controller (`standalone`) this sweep also does what the controller would: it records every node's state and the
    events between each node's stored newest sample and this one (a state change, a GPU lost or back, an XID, new
    uncorrectable ECC errors, thermal slowdown starting); `_tidy` rolls up and prunes. Otherwise a fault first seen by
    a cron sweep would never be an event: the controller compares its first samples with the stored newest, which
    already holds the fault. A live controller owns states, events, rollups and retention.
    """
    reached = _reached(result)
    states: list[NodeState] = []
    events: list[Event] = []
    if standalone:
        reached, states, events = sweep_changes(store.latest(), result.samples, reached, config.interval_s)
    return store.write(reached, [True] * len(reached), states, events)


def _tidy(config: FactoryConfig, store: Store) -> None:
    """Roll up and prune as the controller would (none runs): a stopped sweep leaves both to the next one."""
    from factoryctl.config_schema import parse_duration

    settings = config.settings.controller
    store.rollup()
    store.prune(settings.raw_kept_s, parse_duration(settings.rollup_retention))


def sweep_changes(
    stored: Sequence[tuple[NodeState, NodeSample | None]],
    samples: Sequence[NodeSample],
    reached: Sequence[NodeSample],
    interval_s: float,
) -> tuple[list[NodeSample], list[NodeState], list[Event]]:
    """What a standalone sweep stores: the reached samples (carrying forward XIDs and lost GPUs' names), states, events.

    Each node is judged against what the store holds by the controller's own rule (`judge_against_stored`, which starts
    the controller's judge from the stored state): a node whose state changed, or that is still down or degraded but
    for another kind of reason, gets a `node_<state>` event (one never stored before is news too, as for the
    controller), and a node found unchanged keeps its stored `since`.
    """
    from factoryctl.telemetry.health import carry_forward, gpu_events, state_event
    from factoryctl.telemetry.restart import judge_against_stored

    before = {state.node: (state, sample) for state, sample in stored}
    states: list[NodeState] = []
    events: list[Event] = []
    for s in samples:
        was, _ = before.get(s.node, (None, None))
        state, change = judge_against_stored(s, was, interval_s)
        if change is not None:
            events.append(state_event(change))
        states.append(state)
    kept: list[NodeSample] = []
    for s in reached:
        _, previous = before.get(s.node, (None, None))
        events.extend(gpu_events(previous, s))
        kept.append(carry_forward(previous, s))
    return kept, states, events


def _sweep_item(sample: NodeSample) -> dict[str, Any]:
    """One row of `collect`'s listing: a node's state, GPU count and power in this sweep."""
    return {
        "node": sample.node,
        "state": sample.state,
        "time": iso_utc(sample.time),
        "gpus": len(sample.gpus),
        "power_w": sample.power_w,
    }
