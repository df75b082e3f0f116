"""`factoryctl controller run / status`: the daemon in the foreground, and what it is doing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.completion import complete_choices
from factoryctl.cli.options import DOCUMENT_OUTPUT_OPTION, checked_choice
from factoryctl.cli.render import OutputFormat, emit_document, iso_utc

if TYPE_CHECKING:
    from factoryctl.config import FactoryConfig

app = typer.Typer(no_args_is_help=True)

#: The `--log-level` choices, for shell completion.
LOG_LEVELS = ("debug", "info", "warning", "error")


@app.command("run", short_help="Run the daemon in the foreground until SIGTERM.")
def run(
    ctx: typer.Context,
    log_level: str | None = typer.Option(
        None,
        "--log-level",
        help="debug, info, warning or error (to stderr; default info, warning with -q).",
        autocompletion=complete_choices(LOG_LEVELS),
        show_default=False,
    ),
) -> None:
    """Run the daemon in the foreground: stream every node into the store until SIGTERM; SIGHUP reloads.

    Exits 1 (the reason logged) if its store file is deleted, replaced or found damaged while it runs, or if
    factoryctl's own files changed under it (an upgrade) and fail to load, so systemd notices and restarts it. `-q`
    logs warnings and errors only (its notes and closing figures are info lines), unless --log-level says otherwise.
    """
    config_path, quiet = context.global_options(ctx)
    if log_level is None:
        log_level = "warning" if quiet else "info"
    level = checked_choice(log_level, LOG_LEVELS, "log level")
    from factoryctl.cli.daemon_hangup import take_held_hangup
    from factoryctl.controller import run_controller
    from factoryctl.stale_code import freeze_code

    freeze_code()  # it runs for months: a module imported later (a reload's SSH node), or its agent, is an upgrade's

    code = run_controller(config_path, level, hangup_held=take_held_hangup)  # a SIGHUP while it started: a reload
    if code:  # the reason is already logged (its store was deleted, replaced or damaged, or its code changed)
        raise typer.Exit(code)


@app.command("status", short_help="Whether a controller is running and storing samples.")
def status(ctx: typer.Context, output: OutputFormat = DOCUMENT_OUTPUT_OPTION) -> None:
    """Whether a controller is running on this factory's store and storing samples, and its latest figures.

    Exits 1 with a sentence when none runs, or when the one running is not storing samples into this store.
    """
    import time

    from factoryctl.errors import FactoryError

    config = context.load(ctx)
    doc = _status_doc(config, time.time())
    emit_document(doc, output, _status_text)
    if doc["problem"]:  # none running too: `factoryctl: no controller is running on this store.` and its hint
        raise FactoryError(doc["problem"], doc["hint"])


#: What to do about a store deleted or replaced under the controller (and when no store is there at all).
RESTART_HINT = (
    "see its log (`journalctl -u factoryctl`) and restart it (`systemctl restart factoryctl`); a new store needs the "
    "drains again."
)
START_HINT = (
    "start it with `factoryctl controller run`: it runs in the foreground until SIGTERM, so keep it under a service "
    "manager (systemd: `ExecStart=/path/to/factoryctl --config FILE controller run`)."
)


def _status_doc(config: FactoryConfig, now: float) -> dict[str, Any]:
    """What `controller status -o json` prints: the lock's pid, the store's figures, and what is wrong if anything."""
    from factoryctl.store.sqlite import StoreDamaged, StoreError

    pid, unusable_lock = _lock_holder(config)
    doc: dict[str, Any] = {"running": pid is not None, "pid": pid or None, "store": str(config.store_path)}
    doc.update({"healthy": False, "problem": None, "hint": None, "newest_sample": None, "newest_sample_age_s": None})
    doc["stats"] = None
    newest = stored = None
    failed: StoreError | None = None
    try:
        newest, stored, doc["stats"] = _read_store(config)
    except StoreError as exc:
        failed = exc
    doc["newest_sample"] = iso_utc(newest) if newest else None  # the sample's own time: its node's clock
    # how long ago the controller stored it, on its clock: a node's clock ahead must not make it look fresh
    doc["newest_sample_age_s"] = max(0.0, round(now - stored, 3)) if stored else None
    if failed is not None and (pid is not None or isinstance(failed, StoreDamaged)):
        doc["problem"], doc["hint"] = failed.message, failed.hint
        if pid is not None and not config.store_path.exists():
            doc["problem"] = f"the controller (pid {pid or '?'}) runs but there is no store at {config.store_path}."
            doc["hint"] = RESTART_HINT
    elif pid is not None:
        doc["problem"], doc["hint"] = _problem(config, pid, stored, doc["stats"], now) or (None, None)
        doc["healthy"] = doc["problem"] is None
    else:  # none runs: a controller that found its store damaged exited, so look for that first
        damage = _damage(config) if failed is None else None
        unreadable = _unreadable(config, failed)
        doc["problem"], doc["hint"] = (
            damage or unusable_lock or unreadable or ("no controller is running on this store.", START_HINT)
        )
    for key in ("started_at", "written_at"):  # the controller stores epoch seconds; show times as others do
        if doc["stats"] and isinstance(doc["stats"].get(key), (int, float)):
            doc["stats"][key] = iso_utc(doc["stats"][key])
    if doc["stats"] and type(doc["stats"].get("interval_s")) is int:  # seconds are one type, whoever stored them
        doc["stats"]["interval_s"] = float(doc["stats"]["interval_s"])
    power = doc["stats"].get("power_loop") if doc["stats"] else None
    if isinstance(power, dict) and isinstance(power.get("last_run_at"), (int, float)):
        power["last_run_at"] = iso_utc(power["last_run_at"])
    return doc


def _unreadable(config: FactoryConfig, failed: Exception | None) -> tuple[str, str] | None:
    """With none running, why a store that is there could not be read (a full disk, a newer schema), else None.

    A controller started on it would meet the same; the hint to start one (given when there is no store) hid it.
    """
    import os

    from factoryctl.store.sqlite import StoreError

    if not isinstance(failed, StoreError) or not os.path.exists(config.store_path):  # False when unsearchable
        return None
    return f"no controller is running on this store, and {failed.message}", failed.hint or ""


def _lock_holder(config: FactoryConfig) -> tuple[int | None, tuple[str, str] | None]:
    """The controller's pid (None: none runs), and the sentence and hint when the lock is no file one can hold.

    A FIFO or a link at the lock's path: no controller runs, and the status says what is wrong with the file with
    its figures, rather than only the error.
    """
    from factoryctl.store.lock import LockUnusable, controller_pid

    try:
        return controller_pid(config.state_dir), None
    except LockUnusable as exc:
        return None, (exc.message, exc.hint or "")


#: How long `controller status` checks a store no controller runs on (`PRAGMA quick_check`) before it gives up: the
#: check reads the whole file, and a 1.1 GB store took 3.4 s from the page cache (6 s from disk).
DAMAGE_CHECK_S = 3.0


def _damage(config: FactoryConfig) -> tuple[str, str] | None:
    """The damaged-store sentence and its hint when a check of the store finds it damaged, else None.

    A controller exits when a write finds its store damaged, and status's own reads touch only a few pages: it said
    "no controller is running" with the hint to start one, which only ran into the damage again.
    """
    from factoryctl.store.sqlite import Store, StoreDamaged, StoreError

    try:
        store = Store(config.store_path, readonly=True)
        try:
            found = store.damage_found(DAMAGE_CHECK_S)
        finally:
            store.close()
    except StoreDamaged as exc:
        return exc.message, exc.hint or ""
    except StoreError:
        return None
    if found is None:
        return None
    found = found.removeprefix("*** in database main *** ")
    damaged = StoreDamaged(config.store_path, f"database disk image is malformed (PRAGMA quick_check: {found})")
    return damaged.message, damaged.hint or ""


def _read_store(config: FactoryConfig) -> tuple[float | None, float | None, dict[str, Any] | None]:
    """The newest sample's time, when it was stored and the controller's figures (a `StoreError` if it cannot tell)."""
    import json

    from factoryctl.store.rows import STATS_KEY
    from factoryctl.store.sqlite import Store

    store = Store(config.store_path, readonly=True)
    try:
        newest = store.newest_sample_time()
        stored = store.samples_stored_at()
        raw = store.get_meta(STATS_KEY)
    finally:
        store.close()
    return newest, stored, json.loads(raw) if raw else None


def _problem(
    config: FactoryConfig, pid: int, newest: float | None, stats: dict[str, Any] | None, now: float
) -> tuple[str, str] | None:
    """Why the running controller (pid, 0 if unnamed) is not storing samples here, and what to do; None when it is.

    `newest` is when it stored its newest sample, on its own clock (not the sample's time: a node's clock).
    """
    from factoryctl.controller import STALE_AFTER_INTERVALS, STALE_AFTER_MIN_S
    from factoryctl.store.lock import lock_path
    from factoryctl.store.rows import STATS_EVERY_S

    lock = lock_path(config.state_dir)
    if not pid:
        return (
            f"a controller holds the lock {lock} but the file names no pid.",
            f"find the process holding it (`fuser -v {lock}`); only a controller should.",
        )
    try:
        started = lock.stat().st_mtime  # written when the lock was taken
    except OSError:
        started = now
    theirs = (stats or {}).get("pid")
    if theirs != pid and now - started > 2 * STATS_EVERY_S:
        return (
            f"the controller (pid {pid}) has not written its figures into {config.store_path} since it started: "
            "it writes another file (was the store deleted or replaced?).",
            RESTART_HINT,
        )
    stale_s = max(STALE_AFTER_INTERVALS * config.interval_s, STALE_AFTER_MIN_S)
    age = now - max(newest or 0.0, started)
    if age > stale_s:
        when = f"since {iso_utc(newest)}" if newest else "since it started"
        stale = f"the controller (pid {pid}) has stored no sample {when} ({age:.0f} s, more than {stale_s:g} s)"
        written = (stats or {}).get("written_at")
        writes = (
            isinstance(written, (int, float)) and written > (newest or started) and now - written <= 2 * STATS_EVERY_S
        )
        return _why_stale(config, pid, stale, stats if writes else None)
    return _starved(config, pid)


def _starved(config: FactoryConfig, pid: int) -> tuple[str, str] | None:
    """Nodes down for a limit of this machine (error `local`: threads, files, memory): the controller is starved.

    Its samples stay fresh from the nodes it reaches, so staleness never said it: 17 of 48 nodes up under `ulimit -n
    64` was a healthy status (exit 0). Nothing is wrong with those nodes, and this machine's limit is the thing to fix.
    """
    from factoryctl.transport.host_limits import local_cause, local_hint

    found = _down_for_local_limit(config)
    if found is None:
        return None
    count, message = found
    return (
        f"the controller (pid {pid}) has {count} of its {len(config.nodes)} nodes down for a limit of this machine:"
        f" {local_cause(message)}.",
        local_hint(message),
    )


def _down_for_local_limit(config: FactoryConfig) -> tuple[int, str] | None:
    """How many of the factory's nodes the store holds down for a limit of this machine, and the first one's message.

    Reads the states only (`node_health`): `latest()` would parse every node's newest sample, ~60-110 ms at 1,000
    nodes of 8 GPUs, for a status that looks at none of them.
    """
    from factoryctl.store.sqlite import Store, StoreError
    from factoryctl.transport.host_limits import LOCAL

    try:
        store = Store(config.store_path, readonly=True)
        try:
            states = [state for state, _ in store.node_health()]
        finally:
            store.close()
    except StoreError:
        return None
    down = [s.message for s in states if s.node in config.nodes and s.state == "down" and s.error == LOCAL]
    said = [message for message in down if message]
    return (len(down), said[0]) if said else None


#: Below this much free space on the store's disk, a controller that stores nothing is taken to be stopped by it.
DISK_FULL_BELOW_BYTES = 1 << 20


def _why_stale(config: FactoryConfig, pid: int, stale: str, fresh: dict[str, Any] | None) -> tuple[str, str]:
    """The stale-sample sentence completed with the cause status can see, and the hint that fits it.

    `fresh` are the controller's figures when it wrote them after its newest sample (it still writes the store).
    """
    import psutil

    log = "its log (`journalctl -u factoryctl`)"
    try:
        stopped = psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        stopped = False
    if stopped:
        return f"{stale}: the process is stopped (SIGSTOP, or a debugger holds it).", (
            f"let it go on (`kill -CONT {pid}`), or restart it (`systemctl restart factoryctl`)."
        )
    full = _full(config, fresh)
    if full is not None:  # its figures may still fit (a page SQLite had free) while the samples do not
        return f"{stale}: {full}.", (
            "free disk space, or shorten controller.raw_retention in factory.yaml; the controller keeps up to 120 s "
            "of samples in memory and writes them once it can."
        )
    if fresh is not None:  # it still writes the store: what it lacks is samples
        if not fresh.get("up"):
            return _none_up(config, stale, log)
        said = fresh.get("store_error")
        if isinstance(said, str) and said:  # its samples' write failed (a file size limit, read-only, locked)
            return f"{stale}: {said.rstrip('.')}.", (
                f"{log} says what to do about it; the controller keeps up to 120 s of samples in memory and writes "
                "them once it can."
            )
        return f"{stale}.", f"see {log}."
    busy = _cpu_share(pid)
    if busy is None:
        return f"{stale}, nor its own figures: it cannot write the store.", (
            f"{log} says why (a full disk, a store it may not write, a store another process keeps locked); "
            "it keeps up to 120 s of samples in memory and writes them once it can."
        )
    return (
        f"{stale}, nor its own figures ({busy:.0f} % of a core just now): it cannot write the store, or is too busy to.",
        (
            f"{log} says why (a full disk, a store it may not write, a store another process keeps locked, or too many "
            "nodes for this machine); it keeps up to 120 s of samples in memory and writes them once it can."
        ),
    )


def _none_up(config: FactoryConfig, stale: str, log: str) -> tuple[str, str]:
    """The stale sentence when no node is up, with this machine's limit when that is why (error `local`)."""
    starved = _down_for_local_limit(config)
    if starved is None:
        return f"{stale}: none of its nodes is up.", (
            f"check the nodes (`factoryctl events --kind node_down`, `factoryctl nodes`) and {log}."
        )
    from factoryctl.transport.host_limits import local_cause, local_hint

    count, message = starved  # nothing wrong with the nodes: this machine's limit is reached
    return f"{stale}: none of its nodes is up, {count} for a limit of this machine: {local_cause(message)}.", (
        local_hint(message)
    )


def _full(config: FactoryConfig, fresh: dict[str, Any] | None) -> str | None:
    """How the store is full, when its disk has less than `DISK_FULL_BELOW_BYTES` free or the controller says so.

    The controller's figures carry the store error it met last (`store_error`): "is full" there covers a database
    size limit too, and a disk filled and freed by someone else since.
    """
    import shutil

    try:
        free: int | None = shutil.disk_usage(config.state_dir).free
    except OSError:
        free = None
    if free is not None and free < DISK_FULL_BELOW_BYTES:
        return f"the disk holding the store is full ({free // 1024} KiB free)"
    said = (fresh or {}).get("store_error")
    if isinstance(said, str) and " is full " in said:
        return "the store is full (the disk or the database size limit)"
    return None


def _cpu_share(pid: int) -> float | None:
    """The process's CPU use over half a second, in % of one core (above 100 with several threads), if readable."""
    import psutil

    try:
        return float(psutil.Process(pid).cpu_percent(interval=0.5))
    except psutil.Error:
        return None


def _status_text(doc: dict[str, Any]) -> str:
    """The human form of `controller status`."""
    stats: dict[str, Any] = doc.get("stats") or {}
    state = f"running (pid {doc['pid'] or '?'})" if doc["running"] else "not running"
    lines = [f"controller: {state}", f"store: {doc['store']}", f"newest sample: {doc['newest_sample'] or '-'}"]
    if doc["running"] and stats and stats.get("pid") == doc["pid"]:
        lines.append(
            f"nodes: {stats.get('up', 0)} up of {stats.get('nodes', 0)}; samples {stats.get('samples', 0)}, "
            f"dropped {stats.get('dropped', 0)}, store errors {stats.get('store_errors', 0)}"
            + (f" (as of {stats['written_at']})" if stats.get("written_at") else "")
        )
        lines += _power_loop_lines(stats.get("power_loop"))
    return "\n".join(lines) + "\n"


def _power_loop_lines(power: Any) -> list[str]:  # noqa: ANN401 - the stats' JSON
    """The power loop's line: not run yet, or its last run (when, GPUs changed, errors, why it failed); none when off."""
    if not isinstance(power, dict):
        return []
    if power.get("last_run_at") is None:
        return ["power loop: on, not run yet"]
    changed, errors = power.get("last_changed", 0), power.get("last_errors", 0)
    said = f"power loop: last run {power['last_run_at']}: {changed} GPU{'' if changed == 1 else 's'} changed"
    said += f", {errors} error{'' if errors == 1 else 's'}" + (
        f" ({power['last_failure']})" if power.get("last_failure") else ""
    )
    return [said]
