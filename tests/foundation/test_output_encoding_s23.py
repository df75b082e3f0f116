"""Output and arguments whatever the locale: CSV is UTF-8 always, tables line up, UTF-8 arguments are read as UTF-8.

Under a stdout that cannot write every character (`PYTHONIOENCODING=ascii`, `LC_ALL=C` without UTF-8 mode, a
Latin-1 locale), CSV wrote `Z?rich-?` for `Zürich-α` (while the same row's JSON cell was escaped), and `telemetry
history -o csv`'s trend changed its characters with the locale; a table padded `数据中心` as the 8 columns it takes
on a UTF-8 terminal after it was written `????`, 4; and a UTF-8 `--reason` under `LC_ALL=C` was refused as "not
UTF-8". Real processes, each run with the environment set, on a simulated local node.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_process import CLI_ARGV

FACTORY = (
    "name: lab\nnodes:\n"
    '  ws: {transport: local, sim: {profile: h100-sxm, gpus: 2, seed: 7}, rack: "Zürich-α",'
    ' labels: {owner: "Jürgen", note: "数据中心"}}\n'
)
#: Every way the reviewer saw stdout not take UTF-8: Python's own override, the C locale, a Latin-1 stdout.
NOT_UTF8 = ({"PYTHONIOENCODING": "ascii"}, {"LC_ALL": "C", "PYTHONUTF8": "0"}, {"PYTHONIOENCODING": "latin-1"})


@pytest.fixture
def factory(tmp_path: Path) -> str:
    path = tmp_path / "factory.yaml"
    path.write_text(FACTORY)
    return str(path)


def run(factory: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """`factoryctl --config FACTORY ARGS` with `env` on top of a UTF-8 environment; output as bytes."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIO", "PYTHONUTF8"))}
    full = {**base, "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(
        [*CLI_ARGV, "--config", factory, *args], env=full, capture_output=True, timeout=120, check=False
    )


def csv_rows(output: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output.decode("utf-8"))))


@pytest.mark.parametrize("env", NOT_UTF8, ids=["ascii", "C", "latin-1"])
def test_nodes_csv_is_utf8_whatever_the_locale(factory: str, env: dict[str, str]) -> None:
    done = run(factory, "nodes", "-o", "csv", env=env)
    assert done.returncode == 0, done.stderr
    (row,) = csv_rows(done.stdout)
    assert row["rack"] == "Zürich-α"
    assert row["labels"] == '{"owner":"Jürgen","note":"数据中心"}'  # the same cell as under a UTF-8 locale


def test_events_and_exec_csv_are_utf8_under_ascii(factory: str) -> None:
    assert run(factory, "nodes", "drain", "ws", "-r", "ventilateur cassé").returncode == 0
    events = run(factory, "events", "-o", "csv", env=NOT_UTF8[0])
    assert events.returncode == 0, events.stderr
    (event,) = csv_rows(events.stdout)
    assert event["message"].endswith(": ventilateur cassé"), event
    ran = run(factory, "exec", "ws", "-n", "-o", "csv", "echo", "Zürich-α", env=NOT_UTF8[0])
    assert ran.returncode == 0, ran.stderr
    assert [row["stdout"] for row in csv_rows(ran.stdout)] == ["Zürich-α\n"]


def test_the_history_trend_is_the_same_bytes_whatever_the_locale(factory: str) -> None:
    for _ in range(3):
        assert run(factory, "telemetry", "collect").returncode == 0
    utf8 = run(factory, "telemetry", "history", "ws", "-o", "csv")
    others = [run(factory, "telemetry", "history", "ws", "-o", "csv", env=env) for env in NOT_UTF8]
    trends = [[row["trend"] for row in csv_rows(done.stdout)] for done in (utf8, *others)]
    assert all(len(trend) == 2 and trend == trends[0] for trend in trends), trends
    assert not trends[0][0].isascii()  # the block characters a UTF-8 terminal shows


def test_a_table_lines_up_when_stdout_writes_wide_characters_as_question_marks(factory: str) -> None:
    done = run(factory, "nodes", "-o", "wide", env=NOT_UTF8[0])
    assert done.returncode == 0, done.stderr
    header, row = done.stdout.decode("ascii").splitlines()
    assert "note=????" in row
    after_labels = header.index("LAST SEEN")
    assert row[after_labels - 3 : after_labels] == "   ", (header, row)  # LABELS padded to its width, no more
    assert row[after_labels] != " ", (header, row)


def test_a_utf8_reason_under_the_c_locale_is_taken_as_utf8(factory: str) -> None:
    """`LC_ALL=C` without UTF-8 mode: Python reads argv as ASCII, every other byte escaped; they are UTF-8."""
    c_locale = {"LC_ALL": "C", "PYTHONUTF8": "0"}
    done = run(factory, "nodes", "drain", "ws", "-r", "naïve — ✓", env=c_locale)
    assert done.returncode == 0, done.stderr
    (item,) = json.loads(run(factory, "nodes", "-o", "json").stdout)["items"]
    assert item["drain_reason"] == "naïve — ✓"


def test_a_latin1_reason_under_the_c_locale_is_refused(factory: str) -> None:
    done = subprocess.run(
        [*CLI_ARGV, "--config", factory, "nodes", "drain", "ws", "-r", b"caf\xe9"],
        env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(b"factoryctl: --reason must be UTF-8 text, and 'caf\\xe9' is not.\n")


def test_a_reason_in_a_latin1_locale_is_read_as_latin1_unless_it_is_utf8(
    cli: Any, factory: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a Latin-1 locale argv is read as Latin-1: `café` typed there is stored as café, and UTF-8 bytes as UTF-8."""
    import sys

    monkeypatch.setattr(sys, "getfilesystemencoding", lambda: "iso8859-1")
    typed_in_latin1 = "caf\xe9"  # the byte 0xE9, as Python read it
    sent_as_utf8 = "naïve — ✓".encode().decode("iso8859-1")  # a UTF-8 terminal's bytes, read as Latin-1
    for given, stored in ((typed_in_latin1, "café"), (sent_as_utf8, "naïve — ✓")):
        result = cli("--config", factory, "nodes", "drain", "ws", "-r", given)
        assert result.exit_code == 0, result.stderr
        (item,) = cli("--config", factory, "nodes", "-o", "json").json()["items"]
        assert item["drain_reason"] == stored


def test_a_schedule_written_to_stdout_is_utf8_under_ascii(factory: str, tmp_path: Path) -> None:
    """`sched simulate --schedule-out -` is CSV too: a job id outside ASCII read back as it was in the trace."""
    trace = tmp_path / "trace.csv"
    trace.write_text("job_id,submit_time_s,duration_s,num_gpus\nzürich-α-1,0,60,2\n", encoding="utf-8")
    done = run(
        factory,
        *("sched", "simulate", "--trace", str(trace), "--nodes", "1", "--gpus-per-node", "8"),
        *("--policy", "fifo", "--schedule-out", "-"),
        env={"PYTHONIOENCODING": "ascii"},
    )
    assert done.returncode == 0, done.stderr
    (row,) = csv_rows(done.stdout)
    assert (row["job_id"], row["allocation"]) == ("zürich-α-1", "n001:2")


def test_telemetry_export_csv_is_utf8_under_ascii(factory: str) -> None:
    """`telemetry export` streams its CSV: UTF-8 as `-o csv` is, a throttle reason's name outside ASCII included."""
    import re
    import sqlite3

    collected = run(factory, "telemetry", "collect")
    assert collected.returncode == 0, collected.stderr
    (store,) = re.findall(rb" in (/\S+\.db)", collected.stdout + collected.stderr)
    with sqlite3.connect(store.decode()) as db:  # a name no NVML gives, as a newer agent might, on every sample
        # planted, not renamed: whether the simulated GPUs report a reason (GpuIdle) depends on when they are read
        db.execute("INSERT INTO throttle_reason (bit, name) VALUES (1 << 40, 'HwSlowdown-Zürich-α')")
        db.execute("UPDATE sample SET throttle = coalesce(throttle, 0) | (1 << 40)")
    done = run(factory, "telemetry", "export", "ws", env=NOT_UTF8[0])
    assert done.returncode == 0, done.stderr
    reasons = [row["throttle_reasons"] for row in csv_rows(done.stdout)]
    assert len(reasons) == 2, reasons
    assert any(reason.endswith("-Zürich-α") for reason in reasons), reasons
