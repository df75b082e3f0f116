"""`-o csv` of a listing with no items prints its header line alone: a cron script's CSV parser still finds columns.

The header of an empty listing is the one the same listing has with items (its JSON keys, in order); `--no-header`
leaves nothing, JSON stays `"items": []`, and tables print their header line as before.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from factoryctl.cli.render import OutputFormat, render_csv, render_listing

FACTORY = (
    "name: lab\nnodes:\n"
    "  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    "  d1: {host: 127.0.0.1, port: 1}\n"
)
PRICES = "timestamp_utc,price_per_mwh\n2023-01-01T00:00Z,10\n2023-01-01T01:00Z,12\n"
TRACE = "job_id,submit_time_s,duration_s,num_gpus\nj1,100,100,2\nj2,110,50,1\n"


def test_render_csv_of_no_items_is_the_header_of_its_fields() -> None:
    assert render_csv([], True, ["a", "b,c"]) == 'a,"b,c"\n'
    assert render_csv([], False, ["a", "b"]) == ""
    assert render_csv([], True) == ""  # fields not given: nothing to name
    assert render_csv([{"a": 1, "b": 2}], True, ["z"]) == "a,b\n1,2\n"  # items name their own keys
    document = render_listing([], [], [], OutputFormat.json, fields=["a"])
    assert '"items": []' in document


@pytest.fixture
def lab(tmp_path: Path) -> dict[str, str]:
    """A factory with a simulated node `n1` and a node `d1` that refuses connections, a prices file and a trace."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY + f"state_dir: {tmp_path / 'state'}\n")
    (tmp_path / "prices.csv").write_text(PRICES)
    (tmp_path / "trace.csv").write_text(TRACE)
    return {"config": str(config), "prices": str(tmp_path / "prices.csv"), "trace": str(tmp_path / "trace.csv")}


def listing(lab: dict[str, str], name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A listing's arguments with items, and with none."""
    prices = ("price", "history", "--prices", lab["prices"])
    explain = ("sched", "explain", "--trace", lab["trace"], "--nodes", "1", "--at")
    return {
        "gpus": (("gpus", "n1"), ("gpus", "d1")),
        "events": (("events",), ("events", "--kind", "xid")),
        "audit": (("audit",), ("audit", "d1")),
        "telemetry history": (("telemetry", "history", "n1"), ("telemetry", "history", "d1")),
        "price history": (prices, (*prices, "--since", "2022-01-01T00:00Z", "--until", "2022-01-02T00:00Z")),
        "sched explain": ((*explain, "150"), (*explain, "10")),
    }[name]


#: Listings read from the store: a power change (an audit entry and an event) and a stored sweep fill it. `telemetry
#: energy` has no empty listing: every node of its target is a row (tests/telemetry/test_energy_lists_every_node.py).
STORED = ("events", "audit", "telemetry history")


@pytest.mark.parametrize("name", ["gpus", *STORED, "price history", "sched explain"])
def test_an_empty_listing_prints_the_header_it_has_with_items(cli: Any, lab: dict[str, str], name: str) -> None:
    config = lab["config"]
    if name in STORED:
        assert cli("--config", config, "power", "set", "n1/1", "--watts", "300").exit_code == 0
        assert cli("--config", config, "telemetry", "collect", "n1", "--once").exit_code == 0
    full, empty = listing(lab, name)
    with_items = cli("--config", config, *full, "-o", "csv")
    assert with_items.exit_code == 0, with_items.stderr
    assert len(list(csv.reader(io.StringIO(with_items.stdout)))) > 1
    header = with_items.stdout.splitlines()[0]
    assert cli("--config", config, *empty, "-o", "csv").stdout == header + "\n"
    assert cli("--config", config, *empty, "-o", "csv", "--no-header").stdout == ""
    assert cli("--config", config, *empty, "-o", "json").json()["items"] == []
    table = cli("--config", config, *empty).stdout  # as before: the header line alone
    assert len(table.splitlines()) == 1
    assert table.split()[0] in ("NODE", "TIME", "TIMESTAMP", "JOB")
    assert cli("--config", config, *empty, "--no-header").stdout == ""


def test_exec_on_no_reachable_node_prints_its_header(cli: Any, lab: dict[str, str]) -> None:
    ran = cli("--config", lab["config"], "exec", "n1", "-o", "csv", "--", "true")
    none = cli("--config", lab["config"], "exec", "d1", "-o", "csv", "--", "true")
    assert none.exit_code == 4
    assert none.stdout == ran.stdout.splitlines()[0] + "\n"


def test_events_follow_as_csv_names_its_columns_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    from factoryctl.cli.events import FollowedEventPrinter
    from factoryctl.store.rows import Event

    printer = FollowedEventPrinter(OutputFormat.csv, no_header=False)
    printer.show([], header=True)  # no event yet: the header, so a reader knows the columns while it waits
    assert capsys.readouterr().out == "id,time,node,gpu,kind,severity,message\n"
    printer.show([Event(0.0, "xid", "n1/0: XID 79", node="n1", gpu=0, severity="error", id=7)], header=False)
    assert capsys.readouterr().out == "7,1970-01-01T00:00:00.000Z,n1,0,xid,error,n1/0: XID 79\n"
