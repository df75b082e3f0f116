"""`-o csv` on every listing: the JSON keys as header, raw values, RFC 4180 quoting, errors on stderr as for tables.

Operators moving from `nvidia-smi --query-gpu=... --format=csv` feed our listings to sort, awk and spreadsheets.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from factoryctl.cli.render import render_csv

FACTORY = (
    "name: lab\nnodes:\n"
    "  n1: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 3}}\n"
    "  d1: {host: 127.0.0.1, port: 1}\n"
)


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return str(path)


def test_values_are_raw_and_quoted_as_rfc_4180() -> None:
    items = [
        {"a": 0.1 + 0.2, "b": None, "c": ["x", "y"], "d": {"k": [1, 2]}, "e": True, "f": 'say "hi", then\ngo'},
        {"a": 700, "b": "", "c": [], "d": {}, "e": False, "f": "plain"},
    ]
    text = render_csv(items, header=True)
    assert text.splitlines()[0] == "a,b,c,d,e,f"
    assert "\r" not in text  # lines end as Unix tools expect
    assert rows(text) == [
        ["a", "b", "c", "d", "e", "f"],
        ["0.30000000000000004", "", "x;y", '{"k":[1,2]}', "true", 'say "hi", then\ngo'],
        ["700", "", "", "{}", "false", "plain"],
    ]
    assert '"say ""hi"", then\ngo"' in text
    assert render_csv(items, header=False).startswith("0.30000000000000004,")


def test_gpus_csv_has_the_json_fields_and_values(cli: Any, tmp_path: Path) -> None:
    config = factory(tmp_path)
    listing = cli("--config", config, "gpus", "n1", "-o", "json").json()["items"]
    result = cli("--config", config, "gpus", "n1", "-o", "csv")
    assert result.exit_code == 0, result.stderr
    header, *body = rows(result.stdout)
    assert header == list(listing[0])
    assert header[:4] == ["node", "index", "uuid", "name"]
    assert len(body) == 2
    for item, row in zip(listing, body, strict=True):
        got = dict(zip(header, row, strict=True))
        assert got["uuid"] == item["uuid"]
        assert got["index"] == str(item["index"])
        assert float(got["power_limit_w"]) == item["power_limit_w"]
        assert got["power_limit_w"] == repr(item["power_limit_w"])  # unformatted, unlike the table
        assert got["xid_events"] == ""
    assert rows(cli("--config", config, "gpus", "n1", "-o", "csv", "--no-header").stdout)[0][0] == "n1"


def test_errors_go_to_stderr_and_the_csv_stays_clean(cli: Any, tmp_path: Path) -> None:
    result = cli("--config", factory(tmp_path), "nodes", "list", "-o", "csv", "--no-header")
    assert result.exit_code == 4
    assert [row[:2] for row in rows(result.stdout)] == [["n1", "n1"], ["d1", "127.0.0.1"]]
    assert "factoryctl: d1:" in result.stderr
    assert "refused" not in result.stdout.split("\n")[0]


def test_power_set_audit_events_and_collect(cli: Any, tmp_path: Path) -> None:
    config = factory(tmp_path)
    changed = cli("--config", config, "power", "set", "n1/1", "--watts", "300", "-o", "csv")
    assert changed.exit_code == 0, changed.stderr
    assert rows(changed.stdout) == [
        ["node", "gpu", "before_w", "enforced_w", "clamped"],
        ["n1", "1", "700.0", "300.0", "false"],
    ]
    audit = rows(cli("--config", config, "audit", "-o", "csv").stdout)
    assert "node" in audit[0]
    assert len(audit) == 2
    collected = cli("--config", config, "telemetry", "collect", "n1", "--once", "-o", "csv")
    assert rows(collected.stdout)[0] == ["node", "state", "time", "gpus", "power_w"]
    assert rows(collected.stdout)[1][:2] == ["n1", "up"]
    events = cli("--config", config, "events", "--since", "1h", "-o", "csv")
    assert events.exit_code == 0, events.stderr
    assert all(len(row) == len(rows(events.stdout)[0]) for row in rows(events.stdout))


def test_commands_without_a_listing_refuse_csv(cli: Any, tmp_path: Path) -> None:
    result = cli("--config", factory(tmp_path), "config", "show", "-o", "csv")
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "factoryctl: `factoryctl config show` prints no flat rows (one document, or items with nested lists), so it"
        " has no -o csv.",
        "hint: choose from table, wide, json, yaml (e.g. -o json, and jq's @csv).",
    ]


def test_exec_as_csv_is_a_row_per_node(cli: Any, tmp_path: Path) -> None:
    """pdsh users' `| dshbak` habit in a spreadsheet: node, exit code, output, as `exec -o json`'s items."""
    result = cli("--config", factory(tmp_path), "exec", "n1", "-o", "csv", "--", "echo", "a,b")
    assert result.exit_code == 0, result.stderr
    header, row = rows(result.stdout)
    assert header[:3] == ["node", "exit_code", "stdout"]
    assert row[:3] == ["n1", "0", "a,b\n"]


def test_completion_offers_csv() -> None:
    words = "factoryctl gpus -o c"
    env = {**os.environ, "_FACTORYCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "factoryctl"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["csv"]
