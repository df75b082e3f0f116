"""`factoryctl events` and `factoryctl audit`: health and state events, and every power-limit change, from the store."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import typer

from factoryctl.cli import context
from factoryctl.cli.completion import complete_choice_list
from factoryctl.cli.events_follow import (
    FollowedEventPrinter,
    before_until,
    follow_events,
    print_written,
    wait_for_store,
)
from factoryctl.cli.options import NO_HEADER_OPTION, OUTPUT_OPTION, checked_choice
from factoryctl.cli.render import Column, OutputFormat, emit_listing_pages, iso_utc, limit_watts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from factoryctl.config import FactoryConfig
    from factoryctl.store.rows import AuditEntry
    from factoryctl.store.sqlite import Store

EVENT_COLUMNS = (
    Column("time", "TIME"),
    Column("severity", "SEVERITY"),
    Column("kind", "KIND"),
    Column("node", "NODE"),
    Column("gpu", "GPU", wide_only=True),
    Column("message", "MESSAGE"),
)
AUDIT_COLUMNS = (
    Column("time", "TIME"),
    Column("node", "NODE"),
    Column("gpu", "GPU"),
    Column("action", "ACTION"),
    Column("before_w", "BEFORE W", show=limit_watts),
    Column("after_w", "AFTER W", show=limit_watts),
    Column("clamped", "CLAMPED"),
    Column("user", "USER"),
    Column("reason", "REASON"),
    Column("requested_w", "REQUESTED W", show=limit_watts, wide_only=True),
    Column("outcome", "OUTCOME"),
)
#: Rows read and printed at a time by a listing (`-o json`, `yaml`, `csv`): a million audit entries are never all held.
LISTING_PAGE = 1000
SINCE_HELP = "How far back: a duration (15m, 24h, 7d) or an ISO-8601 time."
UNTIL_OPTION = typer.Option(
    None, "--until", help="End of the window, excluded (default: no end): a duration ago or an ISO-8601 time."
)
#: A billion is far past any store (SQLite takes `limit + 1`, and an integer past 2**63 - 1 would end in an OverflowError).
LIMIT_OPTION = typer.Option(1000, "--limit", min=1, max=1_000_000_000, help="At most this many (the newest).")


def _nodes(ctx: typer.Context, target: str | None, log: str) -> tuple[FactoryConfig, list[str] | None]:
    """The configuration and the node names TARGET lists (None: every node) from the `log` ("audit" or "event").

    A plain node name that is no longer in factory.yaml still lists its rows when the store holds some: the audit log
    is kept for good, and a node that left the inventory keeps its history. Anything else unknown is the same usage
    error as everywhere (a typo, an unknown group or range).
    """
    from factoryctl.errors import UsageError
    from factoryctl.targets import NAME_PATTERN

    config = context.load(ctx)
    if target is None or target == "all":
        return config, None
    try:
        return config, [n.name for n in config.resolve_target(target)]
    except UsageError:
        if not NAME_PATTERN.fullmatch(target) or not _has_logged(config, log, target):
            raise
        return config, [target]


def _has_logged(config: FactoryConfig, log: str, node: str) -> bool:
    """Whether the store (if there is one, and it can be read) holds rows of `node` in its `log`."""
    from factoryctl.cli.telemetry import open_history
    from factoryctl.store.sqlite import StoreError

    if not config.store_path.exists():
        return False
    try:
        store = open_history(config)
        try:
            return store.has_logged(log, node)
        finally:
            store.close()
    except StoreError:  # the name's usage error says more than a store that cannot be read
        return False


#: Every kind of event the store holds (docs/telemetry.md); `--kind` takes a list of them.
EVENT_KINDS = (
    "node_up", "node_degraded", "node_down", "xid", "ecc", "gpu_lost", "gpu_back", "thermal", "drain", "resume",
    "controller_start", "controller_stop", "config_reloaded", "config_rejected", "clock_step", "clock_skew",
    "store_migrated", "job_pending", "job_deferred", "job_starting", "job_running", "job_succeeded", "job_failed",
    "job_cancelled", "job_preempting", "job_preempted",
)  # fmt: skip


def events_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    since: str = typer.Option("24h", "--since", help=SINCE_HELP),
    until: str | None = UNTIL_OPTION,
    kind: list[str] = typer.Option(
        [],
        "--kind",
        metavar="<str>",
        show_default=False,
        help="Only these kinds, comma-separated (node_down,xid; ecc, drain, ...); repeat to add more.",
        autocompletion=complete_choice_list(EVENT_KINDS),
    ),
    limit: int = LIMIT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
    follow: bool = typer.Option(
        False,
        "--follow",
        "-f",
        help="Keep printing new events (JSON lines with -o json, `---` documents with -o yaml) until Ctrl-C "
        "(exit 130), or until an --until time ahead (exit 0); a deleted or replaced store file is followed to the "
        "new one.",
    ),
) -> None:
    """Health and state events: nodes up/degraded/down, XIDs, ECC errors, lost GPUs, drains, reloads."""
    from factoryctl.cli.nothing_stored import open_if_stored
    from factoryctl.store.logs import EventMatch

    kinds = _check_kinds(kind)
    start, end = _window(since, until)  # a bad --since is exit 2 whether or not there is a store yet
    if follow and end is not None:
        _check_follow_end(until or "", end)
    config, names = _nodes(ctx, target, "event")
    store = open_if_stored(config)
    printer = FollowedEventPrinter(output, no_header, names if names is not None else list(config.nodes))
    every_s, written = max(config.interval_s, 0.5), None
    if store is None:  # none yet: an empty log, which a follow follows once there is one
        store = _before_any_store(ctx, config, (output, no_header), printer if follow else None, (every_s, end))
        if store is None:
            return
        written = print_written(store, 0, EventMatch(names, kinds, since=start), printer, end)
    try:
        quiet = context.global_options(ctx)[1]
        if not follow:
            window = store.newest_window("event", start, names, limit, kinds, end)
            listed = _Listed(partial(store.event_pages, window, LISTING_PAGE), lambda e: e.as_json())
            emit_listing_pages(listed, EVENT_COLUMNS, output, no_header, event_fields())
            _say_if_no_controller(store, listed.count > 0 or quiet)
            _say_if_cut(ctx, window.cut, limit, ("event", "events"))
            return
        if written is None:
            written = store.last_event_id()  # read first: what comes after it, the follow prints
            found = store.events(start, names, limit, kinds)  # oldest first: the newest `limit`
            _say_if_no_controller(store, bool(found) or quiet)
            printer.show([e for e in found if (e.id or 0) <= written and before_until(e, end)], header=not no_header)
        store = follow_events(store, written, EventMatch(names, kinds), printer, every_s, end)
    finally:
        store.close()


def _before_any_store(
    ctx: typer.Context, config: FactoryConfig, shape: tuple[OutputFormat, bool], follower: FollowedEventPrinter | None,
    pace: tuple[float, float | None],
) -> Store | None:  # fmt: skip
    """`events` before any store: an empty listing and a note; with `--follow` (`follower`), the store once made.

    None when there is no more to print: no `--follow`, or its `--until` came first (`pace`: how often to look, end).
    """
    from factoryctl.cli.nothing_stored import note_no_store

    waits = " (followed once it is there)" if follower is not None else ""
    note_no_store(ctx, config, "no event", f"`factoryctl controller run` records health events there{waits}")
    if follower is None:
        emit_listing_pages([], EVENT_COLUMNS, *shape, event_fields())
        return None
    follower.show([], header=not shape[1])
    return wait_for_store(config.store_path, *pace)


def _check_follow_end(until: str, end: float) -> None:
    """A usage error unless `--follow`'s `--until` is ahead: following ends there (a duration is that long ago)."""
    import time

    now = time.time()
    if end > now:
        return
    from factoryctl.errors import UsageError

    ahead = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(now + 3600))
    raise UsageError(
        f"--follow prints events as they come until --until, and --until {until} is not in the future.",
        f"give --until a time ahead (e.g. --until {ahead}; a duration means that long ago), "
        "or leave out --follow to list the events before it.",
    )


def _window(since: str, until: str | None) -> tuple[float, float | None]:
    """(start, end) of `--since` / `--until` (end None: no end), parsed and checked as `telemetry history` does.

    Without `--until` the window has no end: an event stamped ahead of this clock (an agent's XID) is still listed.
    """
    import time

    from factoryctl.cli.telemetry import parse_when, time_window

    if until is None:
        return parse_when(since, time.time()), None
    return time_window(since, until)  # `--until` not after `--since` refused, in its words


def _check_kinds(given: list[str]) -> tuple[str, ...]:
    """The `--kind` values (each a comma list; repeats add up) lower-cased, each once: none means every kind.

    An unknown one is a usage error with a did-you-mean, before the store is opened; so is a `--kind` naming none.
    """
    names = [name.strip() for value in given for name in value.split(",") if name.strip()]
    if given and not names:
        from factoryctl.errors import UsageError

        raise UsageError("--kind names no event kind.", "e.g. --kind node_down,xid")
    return tuple(dict.fromkeys(checked_choice(name, EVENT_KINDS, "event kind") for name in names))


def audit_command(
    ctx: typer.Context,
    target: str = context.TARGET_ARG,
    since: str = typer.Option("7d", "--since", help=SINCE_HELP),
    until: str | None = UNTIL_OPTION,
    limit: int = LIMIT_OPTION,
    output: OutputFormat = OUTPUT_OPTION,
    no_header: bool = NO_HEADER_OPTION,
) -> None:
    """Every power-limit change with the value before and after, who and why."""
    from factoryctl.cli.nothing_stored import note_no_store, open_if_stored

    start, end = _window(since, until)
    config, names = _nodes(ctx, target, "audit")
    store = open_if_stored(config)
    if store is None:  # no power limit was ever changed with this state_dir: nothing to list
        emit_listing_pages([], AUDIT_COLUMNS, output, no_header, audit_fields())
        note_no_store(
            ctx, config, "no audit entry", "`factoryctl power set` and `power reset` record every change there"
        )
        return
    try:
        window = store.newest_window("audit", start, names, limit, until=end)
        listed = _Listed(lambda: store.audit_pages(window, LISTING_PAGE), _audit_item)
        emit_listing_pages(listed, AUDIT_COLUMNS, output, no_header, audit_fields())
    finally:
        store.close()
    _say_if_cut(ctx, window.cut, limit, ("audit entry", "audit entries"))


class _Listed:
    """The listing items of the pages `read` returns (`as_item` makes one), counted as they go by.

    Each iteration reads the pages again (a table reads them twice: `emit_listing_pages`); `count` is the last one's.
    """

    def __init__(self, read: Callable[[], Iterator[list[Any]]], as_item: Callable[[Any], dict[str, Any]]) -> None:
        self._read = read
        self._as_item = as_item
        self.count = 0

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        self.count = 0
        for page in self._read():
            self.count += len(page)
            yield [self._as_item(row) for row in page]


def _say_if_cut(ctx: typer.Context, cut: bool, limit: int, what: tuple[str, str]) -> None:
    """Say on stderr when the limit cut the listing: the oldest rows were left out silently before.

    Cut by the default --limit, it is a warning, kept under -q: a nightly `-q audit -o csv > daily.csv` would
    otherwise lose the rows past 1,000 without a word. A --limit given is what was asked for: a note, which -q drops.
    `what` names one row and several rows (`("event", "events")`).
    """
    import sys

    if not cut:
        return
    shown = f"the newest {what[0]} is" if limit == 1 else f"the newest {limit:,} {what[1]} are"
    source = ctx.get_parameter_source("limit")
    if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
        sys.stderr.write(f"factoryctl: warning: only {shown} shown (the default --limit); --limit shows more.\n")
    elif not context.global_options(ctx)[1]:
        sys.stderr.write(f"factoryctl: only {shown} shown; --limit shows more.\n")


def _say_if_no_controller(store: Store, needless: bool) -> None:
    """A note on stderr, unless `needless`, when no controller ever ran on this store: it records the health events.

    An empty listing from a store only `nodes drain` or `sim inject` ever wrote said nothing of why. The controller
    records `controller_start` when it starts (events are never pruned), so its absence tells none ran here; an
    empty window of a store a controller runs on stays silent.
    """
    if needless:
        return
    from factoryctl.cli.telemetry import EARLIEST_S

    if not store.events(EARLIEST_S, None, 1, "controller_start"):
        import sys

        sys.stderr.write(
            "factoryctl: no controller has run on this store; health events are recorded by `factoryctl controller run`.\n"
        )


def event_fields() -> list[str]:
    """The keys of an event item (`Event.as_json`), read off a blank event: the CSV header when none is listed."""
    from factoryctl.store.rows import Event

    return list(Event(0.0, "", "").as_json())


def audit_fields() -> list[str]:
    """The keys of an audit item (`_audit_item`), read off a blank entry: the CSV header when none is listed."""
    from factoryctl.store.rows import AuditEntry

    return list(_audit_item(AuditEntry(0.0, "", 0, "", None, None)))


def _audit_item(entry: AuditEntry) -> dict[str, Any]:
    """One audit entry as a listing item (the JSON shape of `factoryctl audit -o json`)."""
    return {
        "id": entry.id,
        "time": iso_utc(entry.time),
        "node": entry.node,
        "gpu": entry.gpu,
        "action": entry.action,
        "before_w": entry.before_w,
        "after_w": entry.after_w,
        "clamped": entry.clamped,
        "user": entry.user,
        "reason": entry.reason,
        "requested_w": entry.requested_w,
        "outcome": entry.outcome,
    }


def register(app: typer.Typer) -> None:
    """Add `events` and `audit` to the root app."""
    app.command("events", short_help="Health and state events: node states, XIDs, ECC, drains.")(events_command)
    app.command("audit", short_help="Every power-limit change: before, after, who and why.")(audit_command)
