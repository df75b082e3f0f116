"""The store-backed commands end to end through the in-process CLI: history, export, events, audit, drain, collect."""

from __future__ import annotations

import csv
import io
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from factory_yaml import write_factory
from main_thread_sleep import patch_main_thread_sleep

from factoryctl.config import parse_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.lock import ControllerLock
from factoryctl.store.rows import AuditEntry, NodeState
from factoryctl.store.sqlite import Store
from factoryctl.telemetry.latest import read_live

NOW = time.time()


@pytest.fixture(autouse=True)
def _fresh_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """NOW is the start of each test, not of the module: `--since 1m` windows are relative to the wall clock."""
    monkeypatch.setitem(globals(), "NOW", time.time())


def node_sample(node: str, t: float, power: float) -> NodeSample:
    return NodeSample(
        node,
        t,
        gpus=tuple(GpuSample(node, i, uuid=f"GPU-{i}", power_w=power + i, temperature_c=50.0) for i in range(2)),
    )


@pytest.fixture
def factory(tmp_path: Path) -> Path:
    return write_factory(tmp_path, "n[1-2]: {transport: local, sim: h100-sxm, gpus: 2}", controller_interval_s=1)


@pytest.fixture
def filled(factory: Path, tmp_path: Path) -> Path:
    store = Store(tmp_path / "state" / "factory.db")
    start = NOW - 120
    store.write([node_sample(n, start + s, 100.0 + s) for s in range(120) for n in ("n1", "n2")])
    return factory


def test_history_json_one_item_per_gpu(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "history", "n1", "--since", "10m", "-o", "json")
    assert result.exit_code == 0, result.stderr
    doc = result.json()
    assert [(i["node"], i["gpu"], i["metric"]) for i in doc["items"]] == [("n1", 0, "power_w"), ("n1", 1, "power_w")]
    points = doc["items"][0]["points"]
    assert len(points) == 120
    assert set(points[0]) == {"time", "value"}
    assert points[0]["time"].endswith("Z")


def test_history_with_step_has_min_and_max(cli: Any, filled: Path) -> None:
    result = cli(
        "--config", str(filled), "telemetry", "history", "n2/1", "--since", "10m", "--step", "1m", "-o", "json"
    )
    items = result.json()["items"]
    assert len(items) == 1
    point = items[0]["points"][0]
    assert set(point) == {"time", "value", "min", "max"}
    assert point["min"] <= point["value"] <= point["max"]


def test_history_table_summarises_each_gpu(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "history", "all", "--metric", "temperature_c")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["NODE", "GPU", "METRIC", "POINTS"]
    assert len(lines) == 5


def test_a_history_too_large_to_hold_is_bounded_before_it_is_read(
    cli: Any, filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every point of a fleet for hours took gigabytes: JSON refuses past the bound (exit 2, with what to do), the
    table summarises in buckets and says so, and a --step within the bound is served."""
    import factoryctl.cli.telemetry_history as history_cli

    monkeypatch.setattr(history_cli, "MAX_HISTORY_POINTS", 400)  # the store holds 480 points: 2 nodes x 2 GPUs x 120
    refused = cli("--config", str(filled), "telemetry", "history", "all", "--since", "10m", "-o", "json")
    assert refused.exit_code == 2
    assert "this query would return 480 points (at most 400 without --step)." in refused.stderr
    assert "--step" in refused.stderr.splitlines()[-1]
    table = cli("--config", str(filled), "telemetry", "history", "all", "--since", "10m")
    assert table.exit_code == 0, table.stderr
    assert "480 points: summarised in 60 s buckets (--step to choose)" in table.stderr
    counts = {line.split()[3] for line in table.stdout.splitlines()[1:]}
    assert counts == {"120"}  # POINTS counts the stored points, summarised or not (it counted the buckets)
    stepped = cli("--config", str(filled), "telemetry", "history", "n1", "--since", "10m", "--step", "1m", "-o", "json")
    assert stepped.exit_code == 0, stepped.stderr
    assert 2 <= len(stepped.json()["items"][0]["points"]) <= 3
    monkeypatch.setattr(history_cli, "MAX_HISTORY_POINTS", 480)
    assert cli("--config", str(filled), "telemetry", "history", "all", "--since", "10m", "-o", "json").exit_code == 0


def test_history_target_defaults_to_all(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "history", "--metric", "temperature_c")
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 5


def test_history_refuses_unknown_metric(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "history", "n1", "--metric", "watts")
    assert result.exit_code == 2
    assert "power_w" in result.stderr


def test_history_without_a_store_says_how_to_get_one(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "telemetry", "history", "n1")
    assert result.exit_code == 0  # nothing stored yet is an empty history (docs/cli.md, Exit codes), said why
    assert "there is no store at" in result.stderr
    assert "`factoryctl telemetry collect` from cron, stores readings there" in result.stderr  # not --once


def test_export_csv_and_jsonl(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "export", "n1", "--since", "1m")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert 110 <= len(rows) <= 122
    assert rows[0]["node"] == "n1"
    assert float(rows[0]["power_w"]) > 0
    result = cli("--config", str(filled), "telemetry", "export", "--format", "jsonl", "--since", "10m")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 480
    assert {"time", "node", "gpu", "power_w", "energy_j", "throttle_reasons"} <= set(lines[0])


def test_export_of_an_empty_window_says_so_on_stderr(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "export", "n1", "--since", "2000-01-01T00:00:00Z",
                 "--until", "2000-01-02T00:00:00Z")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1  # the CSV header only
    assert "no stored samples for `n1`" in result.stderr


def test_drain_resume_and_events(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "nodes", "drain", "n1", "--reason", "fan")
    assert result.exit_code == 0, result.stderr
    assert "drained: n1" in result.stdout
    store = Store(filled.parent / "state" / "factory.db", readonly=True)
    assert store.drained_nodes()["n1"].reason == "fan"
    assert (
        cli("--config", str(filled), "nodes", "resume", "all").stdout
        == "resumed: n1\nnothing to do: n2 is not drained\n"
    )
    assert cli("--config", str(filled), "nodes", "resume", "n1").stdout == "nothing to do: n1 is not drained\n"
    events = cli("--config", str(filled), "events", "-o", "json").json()["items"]
    assert [e["kind"] for e in events] == ["drain", "resume"]
    only = cli("--config", str(filled), "events", "--kind", "drain", "--limit", "1", "-o", "json").json()["items"]
    assert [e["kind"] for e in only] == ["drain"]  # the newest drain, though a resume came after it
    cut = cli("--config", str(filled), "events", "--limit", "1", "-o", "json")
    assert [e["kind"] for e in cut.json()["items"]] == ["resume"]  # the newest
    assert "only the newest event is shown; --limit shows more." in cut.stderr  # it cut silently
    assert cli("--config", str(filled), "events", "--limit", "2").stderr == ""
    assert cli("--config", str(filled), "-q", "events", "--limit", "1").stderr == ""  # -q: nothing but errors
    audit = cli("--config", str(filled), "audit", "--limit", "1")
    assert audit.exit_code == 0
    assert audit.stderr == ""  # no power change: nothing was cut
    only = cli("--config", str(filled), "events", "--kind", "resume", "-o", "json").json()["items"]
    assert [e["kind"] for e in only] == ["resume"]
    typo = cli("--config", str(filled), "events", "--kind", "resumed")
    assert typo.exit_code == 2
    assert "unknown event kind 'resumed'" in typo.stderr
    assert "did you mean resume?" in typo.stderr
    shouted = cli("--config", str(filled), "events", "--kind", "DRAIN", "-o", "json")
    assert [e["kind"] for e in shouted.json()["items"]] == ["drain"]  # case ignored, as -o


def test_event_kind_and_metric_typos_suggest_the_nearest_choice(cli: Any, filled: Path) -> None:
    kind = cli("--config", str(filled), "events", "--kind", "xdi")
    assert kind.exit_code == 2
    assert "factoryctl: unknown event kind 'xdi'." in kind.stderr
    assert "did you mean xid?" in kind.stderr
    metric = cli("--config", str(filled), "telemetry", "history", "n1", "--metric", "power_ww")
    assert metric.exit_code == 2
    assert "unknown metric 'power_ww'" in metric.stderr
    assert "did you mean power_w?" in metric.stderr
    upper = cli("--config", str(filled), "telemetry", "history", "n1", "--metric", "POWER_W", "-o", "json")
    assert upper.exit_code == 0, upper.stderr
    assert {item["metric"] for item in upper.json()["items"]} == {"power_w"}


def test_metric_completion_offers_the_stored_metrics() -> None:
    from factoryctl.cli.telemetry_history import _complete_metric

    offered = _complete_metric("power")
    assert "power_w" in offered
    assert all(name.startswith("power") for name in offered)
    assert _complete_metric("zzz") == []


def test_drain_commands_registered_directly(filled: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from factoryctl.cli import nodes_drain

    app = typer.Typer()
    nodes_drain.register(app)
    runner = CliRunner()
    from factoryctl.cli.app import GlobalOptions

    result = runner.invoke(app, ["drain", "n2", "-r", "psu"], obj=GlobalOptions(config=filled))
    assert result.exit_code == 0, result.output
    assert Store(filled.parent / "state" / "factory.db").drained_nodes()["n2"].reason == "psu"


def test_audit_listing(cli: Any, filled: Path) -> None:
    Store(filled.parent / "state" / "factory.db").add_audit([AuditEntry(NOW, "n1", 0, "set", 700.0, 450.0, True)])
    items = cli("--config", str(filled), "audit", "n1", "-o", "json").json()["items"]
    assert [(i["before_w"], i["after_w"], i["clamped"]) for i in items] == [(700.0, 450.0, True)]


def test_read_live_needs_a_live_lock_and_fresh_samples(filled: Path, tmp_path: Path) -> None:
    config = parse_config(filled.read_text(), filled)
    store = Store(config.store_path)
    store.write([node_sample("n1", NOW, 300.0)], states=[NodeState("n1", "up", NOW, NOW)])
    store.write(states=[NodeState("n2", "down", NOW, None, "refused", "n2: connection refused.")])
    assert read_live(config, now=NOW) is None  # no controller
    lock = ControllerLock(config.state_dir)
    lock.acquire()
    try:
        live = read_live(config, now=NOW + 1)
        assert live is not None
        assert [(s.node, s.state) for s in live.samples] == [("n1", "up"), ("n2", "down")]
        assert [(e.node, e.kind) for e in live.errors] == [("n2", "refused")]
        assert read_live(config, now=NOW + 3.5) is None  # newest sample older than 3 intervals
    finally:
        lock.release()


def test_collect_once_stores_a_sweep(cli: Any, factory: Path) -> None:
    result = cli("--config", str(factory), "telemetry", "collect", "--once", "-o", "json")
    assert result.exit_code == 0, result.stderr
    assert [i["state"] for i in result.json()["items"]] == ["up", "up"]
    assert "stored 4 GPU samples from 2 of 2 nodes" in result.stderr
    history = cli("--config", str(factory), "telemetry", "history", "all", "-o", "json").json()["items"]
    assert len(history) == 4


def test_energy_per_node_with_cost(cli: Any, filled: Path) -> None:
    result = cli(
        "--config", str(filled), "telemetry", "energy", "n1", "--since", "1h", "--price-per-kwh", "0.2", "-o", "json"
    )
    assert result.exit_code == 0, result.stderr
    (item,) = result.json()["items"]
    assert (item["node"], item["gpus"]) == ("n1", 2)
    # 119 one-second steps at 100..218 W (+1 W on GPU 1), integrated from power: no energy counter in this store
    expected_j = sum(100.0 + s for s in range(119)) * 2 + 119
    assert item["energy_kwh"] == expected_j / 3.6e6  # the joules divided once, no float-sum noise
    assert item["cost"] == float(Decimal(repr(item["energy_kwh"])) * Decimal("0.2"))


def _follow_two_events(cli: Any, filled: Path, monkeypatch: pytest.MonkeyPatch, output: str) -> Any:
    """`events --follow -o output` over a stored event and one arriving during the first pause, then Ctrl-C."""
    from factoryctl.store.rows import Event

    store = Store(filled.parent / "state" / "factory.db")
    store.add_events([Event(time.time() - 5, "node_up", "n1 is up", node="n1")])
    calls = []

    def fake_sleep(seconds: float) -> None:
        calls.append(seconds)
        if len(calls) == 1:
            store.add_events([Event(time.time(), "ecc", "n1/0: uncorrectable ECC errors 1", node="n1", gpu=0)])
        else:
            raise KeyboardInterrupt

    patch_main_thread_sleep(monkeypatch, fake_sleep)
    result = cli("--config", str(filled), "events", "--follow", "-o", output)
    assert result.exit_code == 130, result.stderr  # Ctrl-C, as for any command
    return result


def test_events_follow_prints_new_events_as_json_lines(cli: Any, filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = _follow_two_events(cli, filled, monkeypatch, "json")
    kinds = [json.loads(line)["kind"] for line in result.stdout.splitlines()]
    assert kinds == ["node_up", "ecc"]


def test_events_follow_as_csv_names_its_columns_once(cli: Any, filled: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv

    result = _follow_two_events(cli, filled, monkeypatch, "csv")
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert [row["kind"] for row in rows] == ["node_up", "ecc"]  # one header, then a row per event as it came
    assert rows[1]["gpu"] == "0"


def test_nodes_list_shows_why_who_and_when_a_node_is_drained(cli: Any, filled: Path) -> None:
    import getpass

    before = time.time()
    assert cli("--config", str(filled), "nodes", "drain", "n1", "-r", "fan").exit_code == 0
    (item,) = cli("--config", str(filled), "nodes", "list", "n1", "-o", "json").json()["items"]
    assert (item["drained"], item["drain_reason"], item["drained_by"]) == (True, "fan", getpass.getuser())
    from datetime import datetime

    at = datetime.fromisoformat(item["drained_at"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= at <= time.time() + 1
    wide = cli("--config", str(filled), "nodes", "list", "n1", "-o", "wide").stdout
    header, row = wide.splitlines()
    assert "REASON" in header
    assert "DRAINED BY" in header
    assert "fan" in row.split()
    assert item["drained_at"] in row
    assert cli("--config", str(filled), "nodes", "resume", "n1").exit_code == 0
    (item,) = cli("--config", str(filled), "nodes", "list", "n1", "-o", "json").json()["items"]
    assert (item["drained"], item["drain_reason"], item["drained_by"], item["drained_at"]) == (False, None, None, None)


def test_a_bad_until_names_until_in_its_hint(cli: Any, filled: Path) -> None:
    result = cli("--config", str(filled), "telemetry", "history", "n1", "--metric", "power_w", "--until", "soon")
    assert result.exit_code == 2
    assert "hint: write e.g. --until 1h or --until 2026-11-22T01:00Z." in result.stderr


@pytest.mark.parametrize("command", ["events", "audit"])
def test_a_bad_since_is_a_usage_error_even_before_there_is_a_store(cli: Any, factory: Path, command: str) -> None:
    result = cli("--config", str(factory), command, "--since", "bogus")
    assert result.exit_code == 2, result.stderr
    assert "--since" in result.stderr


@pytest.mark.parametrize("price", ["nan", "inf", "-inf"])
def test_energy_refuses_a_price_that_is_not_a_finite_number(cli: Any, filled: Path, price: str) -> None:
    """`-o json` crashed on a cost of nan ("Out of range float values are not JSON compliant")."""
    r = cli("--config", str(filled), "telemetry", "energy", "--price-per-kwh", price, "-o", "json")
    assert r.exit_code == 2
    assert "--price-per-kwh must be a finite number" in r.stderr


@pytest.mark.parametrize("command", ["history", "energy", "export"])
def test_until_before_since_is_a_usage_error(cli: Any, filled: Path, command: str) -> None:
    r = cli("--config", str(filled), "telemetry", command, "--since", "1h", "--until", "2h")
    assert r.exit_code == 2
    assert "--until 2h is not after --since 1h" in r.stderr


def test_a_node_the_live_controller_does_not_know_is_polled(cli: Any, factory: Path) -> None:
    """A node added to factory.yaml after the controller started has no record in its store: `nodes`/`gpus` ask it
    directly (they said "the controller has not reached it yet", kind agent, exit 1, with an agent hint)."""
    config = parse_config(factory.read_text(), factory)
    store = Store(config.store_path)
    now = time.time()
    store.write([node_sample("n1", now, 300.0)], states=[NodeState("n1", "up", now, now)])
    lock = ControllerLock(config.state_dir)
    lock.acquire()
    try:
        result = cli("--config", str(factory), "nodes", "-o", "json")
        gpus = cli("--config", str(factory), "gpus", "n2", "-o", "json")
    finally:
        lock.release()
    assert result.exit_code == 0, result.stderr
    items = result.json()["items"]
    assert [(i["node"], i["state"], i["backend"]) for i in items] == [("n1", "up", None), ("n2", "up", "sim")]
    assert gpus.exit_code == 0, gpus.stderr
    assert [(g["node"], g["index"]) for g in gpus.json()["items"]] == [("n2", 0), ("n2", 1)]


def test_energy_with_no_reading_in_the_window_is_unknown_not_zero(cli: Any, filled: Path) -> None:
    """A window before any sample read `"energy_kwh": 0.0` (source `none`): a script summing it counted nothing as 0."""
    before = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 3600))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(NOW - 1800))
    args = ("--config", str(filled), "telemetry", "energy", "n1", "--since", before, "--until", until)
    result = cli(*args, "--price-per-kwh", "0.2", "-o", "json")
    assert result.exit_code == 0, result.stderr
    items = result.json()["items"]
    assert [(i["energy_kwh"], i["cost"], i["source"]) for i in items] == [(None, None, "none")]
    assert [g["energy_kwh"] for g in items[0]["per_gpu"]] == [None, None]
    table = cli(*args)
    assert table.stdout.splitlines()[1].split()[2] == "-"
