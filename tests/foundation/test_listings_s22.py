"""Listings' rough edges found in session 22: wide characters in tables, mixed drains, `events`/`audit --until`.

A reason holding CJK or an emoji (two terminal columns each) pushed every later column of its row right: widths were
counted in characters, not in the columns a terminal gives them. `nodes drain` / `resume` on nodes some of which
needed nothing said only what changed, and a replaced reason read as a fresh drain. `events` and `audit` had no
`--until`, which the other time-window commands take. Real agents on the simulated driver (local transport), a real
SQLite store.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len

from factoryctl.cli.render import Column, render_table
from factoryctl.store.rows import AuditEntry, Event
from factoryctl.store.sqlite import Store

WIDE_REASON = "ファン故障 🔥 café"  # 5 CJK and an emoji, two columns each: 18 columns in 12 characters
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: lab\nstate_dir: {tmp_path / 'state'}\n"
        "nodes:\n  gpu[01-06]: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    )
    return path


def _from_column(line: str, column: int) -> str:
    """What `line` shows from terminal column `column` on, counted as rich counts; "" past its end."""
    shown = 0
    for at, char in enumerate(line):
        if shown == column:
            return line[at:]
        assert shown < column, f"column {column} falls inside a wide character: {line!r}"
        shown += cell_len(char)
    assert shown <= column, f"column {column} falls inside a wide character: {line!r}"
    return ""


def _assert_aligned(text: str, headers: list[str]) -> None:
    """Each of `headers` starts at the same terminal column in the header line and every row (after a space)."""
    lines = text.splitlines()
    for header in headers:
        column = cell_len(lines[0][: lines[0].index(header)])
        for line in lines[1:]:
            rest = _from_column(line, column)
            before = _from_column(line, column - 1)[:1]
            assert rest[:1] not in ("", " "), f"{header} not at column {column}: {line!r}"
            assert before == " ", f"{header} not at column {column}: {line!r}"


def test_render_table_pads_by_terminal_columns() -> None:
    columns = [Column("node", "NODE"), Column("reason", "REASON"), Column("by", "BY")]
    items = [{"node": "n1", "reason": WIDE_REASON, "by": "ops"}, {"node": "n2", "reason": "fan", "by": "root"}]
    text = render_table(items, columns, wide=False, header=True)
    _assert_aligned(text, ["REASON", "BY"])
    assert text.splitlines()[1] == f"n1     {WIDE_REASON}   ops"  # padded to its 18 columns, not 12 characters


def test_nodes_wide_keeps_drained_by_aligned_after_a_wide_reason(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "nodes", "drain", "gpu02", "-r", WIDE_REASON).exit_code == 0
    assert cli("--config", str(factory), "nodes", "drain", "gpu03", "-r", "fan").exit_code == 0
    listed = cli("--config", str(factory), "nodes", "gpu[01-03]", "-o", "wide")
    assert listed.exit_code == 0, listed.stderr
    assert WIDE_REASON in listed.stdout
    _assert_aligned(listed.stdout, ["DRAINED BY", "DRAINED AT", "UNHEALTHY"])


def _store(factory: Path) -> Store:
    return Store(factory.parent / "state" / "factory.db")


def test_audit_keeps_its_columns_aligned_after_a_wide_reason(cli: Any, factory: Path) -> None:
    store = _store(factory)
    try:
        store.add_audit(
            [
                AuditEntry(T0, "gpu01", 0, "set", 700.0, 450.0, user="ops", reason=WIDE_REASON, requested_w=450.0),
                AuditEntry(T0 + 1, "gpu02", 1, "set", 700.0, 500.0, user="root", reason="peak", requested_w=500.0),
            ]
        )
    finally:
        store.close()
    for output in ("table", "wide"):
        listed = cli("--config", str(factory), "audit", "--since", "2026-09-01", "-o", output)
        assert listed.exit_code == 0, listed.stderr
        _assert_aligned(listed.stdout, ["OUTCOME", *(["REQUESTED W"] if output == "wide" else [])])


def test_drain_of_a_mixed_target_says_what_changed_and_what_did_not(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "nodes", "drain", "gpu[01-02]", "-r", "fan").exit_code == 0
    mixed = cli("--config", str(factory), "nodes", "drain", "gpu[01-03]")
    assert mixed.exit_code == 0, mixed.stderr
    assert mixed.stdout == "drained: gpu03\nnothing to do: gpu[01-02] are already drained\n"
    resumed = cli("--config", str(factory), "nodes", "resume", "gpu[03-04]")
    assert resumed.stdout == "resumed: gpu03\nnothing to do: gpu04 is not drained\n"


def test_a_replaced_reason_is_not_reported_as_a_fresh_drain(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "nodes", "drain", "gpu[01-03]", "-r", "fan").exit_code == 0
    replaced = cli("--config", str(factory), "nodes", "drain", "gpu02", "-r", "psu")
    assert replaced.stdout == "reason replaced: gpu02\n"
    every = cli("--config", str(factory), "nodes", "drain", "gpu[01-04]", "-r", "fan")  # 01, 03 keep "fan"
    assert every.stdout == "drained: gpu04\nreason replaced: gpu02\nnothing to do: gpu[01,03] are already drained\n"
    as_json = cli("--config", str(factory), "nodes", "drain", "gpu[02-03]", "-r", "psu", "-o", "json").json()
    assert [(i["node"], i["changed"], i["reason"]) for i in as_json["items"]] == [
        ("gpu02", True, "psu"),
        ("gpu03", True, "psu"),
    ]  # -o json unchanged: `changed` covers a replaced reason


def _events(factory: Path) -> None:
    """Five drain events a minute apart from T0, on gpu01 and gpu02 in turn."""
    store = _store(factory)
    try:
        store.add_events(
            [Event(T0 + 60 * k, "drain", f"gpu0{k % 2 + 1} drained: {k}", node=f"gpu0{k % 2 + 1}") for k in range(5)]
        )
    finally:
        store.close()


def test_events_until_ends_the_window_before_it(cli: Any, factory: Path) -> None:
    _events(factory)
    window = ("--since", "2026-09-21T14:14:20Z", "--until", "2026-09-21T14:16:20Z")  # T0+60 up to T0+180, excluded
    listed = cli("--config", str(factory), "events", *window, "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [i["message"] for i in listed.json()["items"]] == ["gpu02 drained: 1", "gpu01 drained: 2"]
    rows = cli("--config", str(factory), "events", "gpu01", *window, "-o", "csv").stdout.splitlines()
    assert len(rows) == 2
    assert rows[1].endswith("gpu01 drained: 2")
    table = cli("--config", str(factory), "events", *window, "--no-header").stdout.splitlines()
    assert [line.split()[-1] for line in table] == ["1", "2"]
    newest = cli("--config", str(factory), "events", *window, "--limit", "1", "-o", "json").json()["items"]
    assert [i["message"] for i in newest] == ["gpu01 drained: 2"]  # the newest before --until, not of them all


def test_events_until_as_a_duration_ago(cli: Any, factory: Path) -> None:
    store = _store(factory)
    try:
        now = time.time()
        store.add_events([Event(now - 7200, "drain", "old", node="gpu01"), Event(now - 60, "drain", "new", "gpu01")])
    finally:
        store.close()
    listed = cli("--config", str(factory), "events", "--since", "3h", "--until", "1h", "-o", "json")
    assert [i["message"] for i in listed.json()["items"]] == ["old"]


def test_audit_until_ends_the_window_before_it(cli: Any, factory: Path) -> None:
    store = _store(factory)
    try:
        store.add_audit([AuditEntry(T0 + 60 * k, "gpu01", k, "set", 700.0, 400.0 + k) for k in range(4)])
    finally:
        store.close()
    window = ("--since", "2026-09-21T14:13:20Z", "--until", "2026-09-21T14:15:20Z")
    listed = cli("--config", str(factory), "audit", *window, "-o", "json")
    assert listed.exit_code == 0, listed.stderr
    assert [i["gpu"] for i in listed.json()["items"]] == [0, 1]
    assert len(cli("--config", str(factory), "audit", *window, "-o", "csv").stdout.splitlines()) == 3
    assert len(cli("--config", str(factory), "audit", *window).stdout.splitlines()) == 3


@pytest.mark.parametrize("command", ["events", "audit"])
def test_an_until_not_after_since_is_refused_as_telemetry_refuses_it(cli: Any, factory: Path, command: str) -> None:
    _events(factory)
    result = cli("--config", str(factory), command, "--since", "1h", "--until", "2h")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "factoryctl: --until 2h is not after --since 1h: the window would be empty.",
        "hint: give --until a later time than --since (or leave it out: until now).",
    ]
    bad = cli("--config", str(factory), command, "--until", "soon")
    assert bad.exit_code == 2
    assert "--until `soon` is neither a duration nor an ISO-8601 time." in bad.stderr


def test_follow_refuses_until(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "events", "--follow", "--until", "1h")
    assert result.exit_code == 2
    # a duration is that long ago: follow takes an --until ahead only (tests/telemetry/test_events_follow_until_s24.py)
    assert result.stderr.startswith("factoryctl: --follow prints events as they come until --until, and --until 1h is")


@pytest.mark.parametrize(
    "text", [WIDE_REASON, "e\u0301t\u00e9", "中文 ｱ", "😀👍", "☀️ ❤️ ok", "x\ufe0f", "\u00ad", "한국어"]
)
def test_cell_width_counts_terminal_columns_as_rich_does(text: str) -> None:
    from factoryctl.cli.cells import cell_width

    assert cell_width(text) == cell_len(text)


def test_the_nodes_left_alone_in_a_big_target_are_cut_short_with_their_count() -> None:
    from factoryctl.cli.nodes_drain import _said

    names = [f"n{i:04d}" for i in range(1, 2001)]
    was = set(names[::7])
    said = _said(names, False, was, was).splitlines()
    assert said[0].startswith("resumed: n[0001,0008,")
    assert said[1].startswith("nothing to do: n[0002-0007,")
    assert said[1].endswith(",...] (1714) are not drained")
    assert len(said[1]) < 260
