"""Streams a cron script reads: `--watch` and `events --follow` off a terminal, and -q on an empty result.

`--watch` into a file wrote each redraw as on a screen: YAML documents with no `---` (safe_load_all kept only the
last snapshot), pretty JSON objects back to back (json.loads: "Extra data"), the CSV header before every redraw,
and tables without their `Every Ns: <time>Z` line. `events --follow -o yaml` printed JSON lines, which no YAML
reader takes. `-q telemetry export/history` still explained an empty result, so cron mailed it on exit 0. Run
through the in-process CLI on local simulated nodes and a real SQLite store; the pause between two redraws (or two
polls of the follow) is where the test presses Ctrl-C.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from factory_yaml import write_factory
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store

REDRAWS = 3


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "m[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)


def _ctrl_c_after(monkeypatch: pytest.MonkeyPatch, module: str, pauses: int) -> None:
    """Ctrl-C at the `pauses`-th pause between two outputs of `module` (cli.listing for --watch)."""
    left = [pauses]

    def pause(seconds: float) -> None:
        left[0] -= 1
        if left[0] <= 0:
            raise KeyboardInterrupt

    monkeypatch.setattr(f"factoryctl.cli.{module}.pause_while_read", pause)


def _watch(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    _ctrl_c_after(monkeypatch, "listing", REDRAWS)
    result = cli("--config", str(factory), "gpus", "m1/0", "-w", "--interval", "1", *args)
    assert result.exit_code == 130, result.stderr
    return str(result.stdout)


def test_watch_yaml_off_a_terminal_is_one_document_per_redraw(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    documents = list(yaml.safe_load_all(_watch(cli, factory, monkeypatch, "-o", "yaml")))
    assert len(documents) == REDRAWS
    assert all(d["schema_version"] == 1 and [i["node"] for i in d["items"]] == ["m1"] for d in documents)


def test_watch_json_off_a_terminal_is_json_lines(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _watch(cli, factory, monkeypatch, "-o", "json").splitlines()
    assert len(lines) == REDRAWS
    assert all([i["index"] for i in json.loads(line)["items"]] == [0] for line in lines)


def test_watch_csv_off_a_terminal_names_its_columns_once(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = list(csv.DictReader(io.StringIO(_watch(cli, factory, monkeypatch, "-o", "csv"))))
    assert [(r["node"], r["index"]) for r in rows] == [("m1", "0")] * REDRAWS


def test_watch_csv_without_header_has_rows_only(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _watch(cli, factory, monkeypatch, "-o", "csv", "--no-header").splitlines()
    assert len(lines) == REDRAWS
    assert all(line.startswith("m1,0,") for line in lines)


def test_watch_table_off_a_terminal_stamps_each_redraw(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
    text = _watch(cli, factory, monkeypatch)
    stamps = re.findall(r"^Every 1s: (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$", text, re.MULTILINE)
    assert len(stamps) == REDRAWS, text
    assert all(stamp >= before for stamp in stamps), text
    assert "\x1b" not in text  # no screen clearing in a log
    assert text.count("\nNODE ") == REDRAWS
    assert text.startswith("Every 1s: ")


def test_events_follow_yaml_is_one_document_per_event(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(factory.parent / "state" / "factory.db")
    now = time.time()
    store.add_events([Event(now - 60, "node_up", "m1 is up", node="m1")])
    writes = [[Event(now, "xid", "m1/0: XID 13", node="m1", gpu=0, severity="error")]]

    def pause(seconds: float) -> None:
        if not writes:
            raise KeyboardInterrupt
        store.add_events(writes.pop(0))

    patch_main_thread_sleep(monkeypatch, pause)
    try:
        result = cli("--config", str(factory), "events", "--follow", "-o", "yaml")
    finally:
        store.close()
    assert result.exit_code == 130, result.stderr
    events = list(yaml.safe_load_all(result.stdout))
    assert [(e["kind"], e["message"], e["gpu"]) for e in events] == [
        ("node_up", "m1 is up", None),
        ("xid", "m1/0: XID 13", 0),
    ]


def test_events_follow_json_stays_json_lines(cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(factory.parent / "state" / "factory.db")
    store.add_events([Event(time.time(), "node_up", "m2 is up", node="m2")])
    store.close()
    patch_main_thread_sleep(monkeypatch, lambda seconds: (_ for _ in ()).throw(KeyboardInterrupt))
    result = cli("--config", str(factory), "events", "--follow", "-o", "json")
    assert result.exit_code == 130, result.stderr
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["m2 is up"]


@pytest.mark.parametrize(
    ("args", "note"),
    [
        (("telemetry", "export", "--since", "1s"), "no stored samples for `all`"),
        (("telemetry", "history", "m1", "-m", "energy_j", "-o", "json"), "no stored energy_j for `m1`"),
    ],
)
def test_an_empty_result_is_explained_except_under_q(cli: Any, factory: Path, args: tuple[str, ...], note: str) -> None:
    Store(factory.parent / "state" / "factory.db").close()  # a store, empty
    said = cli("--config", str(factory), *args)
    assert said.exit_code == 0
    assert note in said.stderr
    quiet = cli("--config", str(factory), "-q", *args)
    assert quiet.exit_code == 0
    assert quiet.stderr == ""
    assert quiet.stdout == said.stdout  # the result itself is the same
