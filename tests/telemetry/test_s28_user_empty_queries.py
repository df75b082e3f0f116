"""One rule for the store's queries: an empty result exits 0 with a note on stderr, and no store yet is empty.

On a fresh `state_dir` `events`, `telemetry history` and `power report` exited 1 ("there is no store ... yet") while
`audit` and `jobs` exited 0; after one `telemetry collect`, `telemetry energy` said "no stored energy reading" of a
node read once, and `power report` exited 1. A cron script could not tell "nothing yet" from a failure. Real CLI,
real SQLite store, real agents on the simulated driver.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.store.rows import Event
from factoryctl.store.sqlite import Store

#: Each query of the store that exited 1 before any store, and the start of its note now (`audit` kept the rule).
QUERIES = {
    "events": (["events"], "no event yet: there is no store at "),
    "history": (["telemetry", "history"], "no stored power_w yet: there is no store at "),
    "export": (["telemetry", "export"], "no stored sample yet: there is no store at "),
    "energy": (["telemetry", "energy"], "no stored energy yet: there is no store at "),
    "report": (["power", "report"], "no GPU energy yet: there is no store at "),
}


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "ws: {transport: local, sim: {profile: h100-sxm, gpus: 2}}")


@pytest.mark.parametrize("query", list(QUERIES))
def test_a_query_before_any_store_is_an_empty_result_and_exit_0(cli: Any, factory: Path, query: str) -> None:
    args, note = QUERIES[query]
    result = cli("--config", str(factory), *args, *([] if query == "export" else ["-o", "json"]))
    assert result.exit_code == 0, result.stderr
    assert f"factoryctl: {note}{factory.parent / 'state' / 'factory.db'}; " in result.stderr
    if query == "export":
        assert result.stdout.startswith("time,node,gpu,")
        assert result.stdout.count("\n") == 1
    else:
        items = json.loads(result.stdout)["items"]
        assert all(item.get("energy_kwh") is None for item in items)  # energy and report: a row per node, unknown
        assert len(items) == (1 if query in ("energy", "report") else 0)
    assert not (factory.parent / "state" / "factory.db").exists()  # reading made no store


def test_one_reading_is_no_interval_energy_says_so_and_report_exits_0(cli: Any, factory: Path) -> None:
    assert cli("--config", str(factory), "-q", "telemetry", "collect", "--once").exit_code == 0
    energy = cli("--config", str(factory), "telemetry", "energy", "--since", "1h", "-o", "json")
    assert energy.exit_code == 0, energy.stderr
    assert json.loads(energy.stdout)["items"][0]["energy_kwh"] is None
    assert "warning: only one reading of ws is stored since " in energy.stderr
    assert "and energy is measured between two readings: its energy is unknown, not 0" in energy.stderr
    assert "no stored energy reading" not in energy.stderr
    report = cli("--config", str(factory), "power", "report", "--since", "1h", "-o", "json")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["total"]["energy_kwh"] is None
    assert "factoryctl: nothing to report: only one reading of ws is stored since " in report.stderr


def test_events_follow_before_any_store_follows_it_once_made(
    cli: Any, factory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pause of the follow makes the store with an event in it, as a controller starting would."""
    made: list[Store] = []
    real_sleep = time.sleep

    def pause(seconds: float) -> None:
        if not made:
            made.append(Store(factory.parent / "state" / "factory.db"))
            made[0].add_events([Event(time.time(), "node_up", "ws is up", node="ws")])
        real_sleep(min(seconds, 0.2))

    patch_main_thread_sleep(monkeypatch, pause)
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
    try:
        result = cli("--config", str(factory), "events", "--follow", "--until", until, "-o", "json")
    finally:
        for store in made:
            store.close()
    assert result.exit_code == 0, result.stderr
    assert "followed once it is there" in result.stderr
    assert [json.loads(line)["message"] for line in result.stdout.splitlines()] == ["ws is up"]
