"""`factoryctl audit` and `events` at scale, and their listings' edges.

A listing is read from the store and printed page by page: a million audit entries held every row three or four times
(1.9 GB for `-o csv`, 4.1 GB for `-o json`) and printed nothing until all of it was built. The pages must add up to
exactly what the whole listing printed at once. The default `--limit` cutting a cron export is a warning `-q` keeps; a
node that left factory.yaml still lists its kept entries; a store that does not exist yet is an empty audit log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from factory_yaml import write_factory

from factoryctl.cli.events import AUDIT_COLUMNS, EVENT_COLUMNS, _audit_item, audit_fields, event_fields
from factoryctl.cli.render import OutputFormat, render_listing
from factoryctl.store.rows import AuditEntry, Event
from factoryctl.store.sqlite import Store

#: Text that each output form writes in its own way: non-ASCII, escapes, quotes, commas, a line YAML folds.
ODD_REASONS = (
    None,
    "grid peak, ticket OPS-1",
    'quoted "reason"',
    "é 中 \u00b0",
    "a\\x1b[31m escaped control",
    "- looks: like yaml",
    "long " + "word " * 40,
    "",
)


def _entries(count: int, start: float, node: str = "n1") -> list[AuditEntry]:
    """`count` entries, eight at a time sharing one time (a node's GPUs answer together): pages cut through ties."""
    return [
        AuditEntry(
            start + (k // 8) * 0.5,
            node if k % 5 else "n2",
            None if k % 11 == 0 else k % 8,
            "reset" if k % 3 == 0 else "set",
            700.0,
            [450.0, 287.5, 100.4, None][k % 4],
            k % 7 == 0,
            None if k % 13 == 0 else "root",
            ODD_REASONS[k % len(ODD_REASONS)],
            requested_w=None if k % 3 == 0 else 450.0,
            outcome="unknown" if k % 17 == 0 else "confirmed",
        )
        for k in range(count)
    ]


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "n[1-2]: {transport: local, sim: h100-sxm, gpus: 2}")


def _store_path(factory: Path) -> Path:
    return factory.parent / "state" / "factory.db"


def _fill(factory: Path, entries: list[AuditEntry], events: Sequence[Event] = ()) -> None:
    store = Store(_store_path(factory))
    try:
        store.add_audit(entries)
        store.add_events(list(events))
    finally:
        store.close()


@pytest.mark.parametrize("output", list(OutputFormat))
@pytest.mark.parametrize("no_header", [False, True])
def test_audit_pages_print_what_the_whole_listing_printed(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch, output: OutputFormat, no_header: bool
) -> None:
    """Hundreds of entries read 37 at a time (pages ending inside a run of equal times) print the same bytes."""
    monkeypatch.setattr("factoryctl.cli.events.LISTING_PAGE", 37)
    _fill(factory, _entries(450, time.time() - 3600))
    store = Store(_store_path(factory), readonly=True)
    header = ["--no-header"] if no_header else []
    for limit, target in ((300, "all"), (1000, "all"), (111, "n2"), (1, "all")):
        whole = [_audit_item(e) for e in store.audit(time.time() - 86400, None if target == "all" else [target], limit)]
        expected = render_listing(whole, [], AUDIT_COLUMNS, output, no_header, audit_fields())
        result = cli("--config", str(factory), "audit", target, "--limit", str(limit), "-o", output.value, *header)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected, (limit, target)
    store.close()


@pytest.mark.parametrize("output", ["json", "yaml", "csv"])
def test_an_empty_audit_window_prints_as_before(cli: Any, factory: Path, output: str) -> None:
    _fill(factory, _entries(20, time.time() - 30 * 86400))  # all older than the default 7 days
    result = cli("--config", str(factory), "audit", "-o", output)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == render_listing([], [], AUDIT_COLUMNS, OutputFormat(output), False, audit_fields())


@pytest.mark.parametrize("output", list(OutputFormat))
def test_event_pages_print_what_the_whole_listing_printed(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch, output: OutputFormat
) -> None:
    monkeypatch.setattr("factoryctl.cli.events.LISTING_PAGE", 29)
    now = time.time()
    kinds = ("drain", "xid", "resume", "node_down")
    events = [Event(now - 3000 + (k // 4), kinds[k % 4], f"n1: message {k} é", "n1" if k % 3 else "n2", k % 8,
                    "error" if k % 2 else "info") for k in range(400)]  # fmt: skip
    _fill(factory, [], events)
    store = Store(_store_path(factory), readonly=True)
    for limit, kind in ((250, ("drain", "xid")), (1000, None), (7, ("resume",))):
        whole = [e.as_json() for e in store.events(now - 86400, None, limit, kind)]
        expected = render_listing(whole, [], EVENT_COLUMNS, output, False, event_fields())
        kind_args = ["--kind", ",".join(kind)] if kind else []
        result = cli("--config", str(factory), "-q", "events", "--limit", str(limit), "-o", output.value, *kind_args)
        assert result.exit_code == 0, result.stderr
        assert result.stdout == expected, (limit, kind)
    store.close()


def test_yaml_from_libyaml_is_what_the_python_emitter_wrote() -> None:
    """`-o yaml` uses libyaml's emitter when it is there: the same text as PyYAML's own, odd and long values too."""
    from factoryctl.cli.render import escaped_rows
    from factoryctl.cli.yaml_output import yaml_text

    items = escaped_rows([_audit_item(e) for e in _entries(64, 1.7e9)], OutputFormat.yaml)
    odd = [
        "\x85",
        "\u2028",
        "\ufeff",
        "x\ty",
        "a\nb",
        "yes",
        "null",
        "1e3",
        "~",
        "#",
        ": ",
        "\U0001f600",
        "é 中",
        "\x1b",
    ]
    odd += [f"{text} {' é' * 30}{text}" for text in odd]  # folded past 80 columns: libyaml folds a "..." elsewhere
    for unicode in (True, False):
        for document in ({"schema_version": 1, "items": items, "errors": []}, {"items": [{"k": v} for v in odd]}):
            assert yaml_text(document, unicode) == yaml.safe_dump(document, sort_keys=False, allow_unicode=unicode)


_MAX_RSS = """
import atexit, resource, sys
atexit.register(lambda: sys.stderr.write(f"maxrss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n"))
from factoryctl.cli.entry import main
sys.argv[0] = "factoryctl"
main()
"""


def _peak_kb(factory: Path, *args: str) -> int:
    """The most memory `factoryctl -c factory ARGS` held (its maxrss), its output thrown away."""
    command = [sys.executable, "-c", _MAX_RSS, "-c", str(factory), *args]
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int(done.stderr.rsplit("maxrss_kb=", 1)[1].split()[0])


@pytest.mark.parametrize("output", ["json", "csv", "yaml"])
def test_a_long_audit_listing_holds_a_page_not_every_entry(factory: Path, output: str) -> None:
    """20,000 entries take no more memory than 10: each page is printed and let go (all at once: 9 to 150 MB more)."""
    _fill(factory, _entries(20_000, time.time() - 86400))
    small = _peak_kb(factory, "-q", "audit", "--limit", "10", "-o", output)
    large = _peak_kb(factory, "-q", "audit", "--limit", "20000", "-o", output)
    assert large - small < 4_000, (small, large)  # KiB: the same, give or take SQLite's cache


@pytest.mark.parametrize("command", ["audit", "events"])
def test_the_default_limit_cutting_a_quiet_export_is_a_warning(cli: Any, factory: Path, command: str) -> None:
    """`-q audit -o csv > daily.csv` from cron lost the rows past 1,000 without a word: -q dropped the note."""
    now = time.time()
    _fill(factory, _entries(1003, now - 3600), [Event(now - 60 + k / 100, "drain", "n1: d", "n1") for k in range(1001)])
    quiet = cli("--config", str(factory), "-q", command, "-o", "csv")
    assert quiet.exit_code == 0, quiet.stderr
    assert quiet.stdout.count("\n") == 1001  # the header and the newest 1,000
    assert "warning: only the newest 1,000 " in quiet.stderr
    assert "(the default --limit); --limit shows more." in quiet.stderr
    asked = cli("--config", str(factory), "-q", command, "--limit", "5", "-o", "csv")
    assert asked.exit_code == 0
    assert asked.stderr == ""  # the five asked for: -q says nothing
    told = cli("--config", str(factory), command, "--limit", "1000", "-o", "csv")
    assert "factoryctl: only the newest 1,000 " in told.stderr  # given, not under -q: the note
    assert "warning" not in told.stderr
    whole = cli("--config", str(factory), "-q", command, "--limit", "2000", "-o", "csv")
    assert whole.stderr == ""
    assert whole.stdout.count("\n") == (1004 if command == "audit" else 1002)


@pytest.mark.parametrize("command", ["audit", "events"])
def test_a_node_gone_from_factory_yaml_lists_its_kept_entries(cli: Any, factory: Path, command: str) -> None:
    now = time.time()
    _fill(factory, _entries(3, now - 60, node="gone01")[1:3], [Event(now - 30, "drain", "gone01: d", "gone01")])
    result = cli("--config", str(factory), command, "gone01", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)["items"]
    assert items
    assert {item["node"] for item in items} == {"gone01"}
    for target in ("gone02", "gone[01-02]", "gone01,n1", "@gone01"):  # no entry, or not a plain name: as before
        refused = cli("--config", str(factory), command, target)
        assert refused.exit_code == 2, (target, refused.stderr)
        assert "match" in refused.stderr or "unknown" in refused.stderr


def test_a_gone_node_without_a_store_is_the_usage_error(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "audit", "gone01")
    assert result.exit_code == 2
    assert "`gone01` matches no node in the inventory" in result.stderr


@pytest.mark.parametrize("output", ["csv", "json", "table"])
def test_audit_before_any_store_is_an_empty_log(cli: Any, factory: Path, output: str) -> None:
    """No store yet: no power limit was changed here. Not exit 1 with a hint to run the controller."""
    result = cli("--config", str(factory), "audit", "-o", output)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == render_listing([], [], AUDIT_COLUMNS, OutputFormat(output), False, audit_fields())
    assert "no audit entry yet: there is no store at" in result.stderr
    assert "`factoryctl power set` and `power reset` record" in result.stderr
    assert "controller run" not in result.stderr
    quiet = cli("--config", str(factory), "-q", "audit", "-o", output)
    assert (quiet.exit_code, quiet.stderr) == (0, "")
    assert not _store_path(factory).exists()  # listing made no store


def test_events_before_any_store_still_says_so(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "events")
    assert result.exit_code == 0  # an empty log, as audit's (docs/cli.md, Exit codes)
    assert "no event yet: there is no store at" in result.stderr
