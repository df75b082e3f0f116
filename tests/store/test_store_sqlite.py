"""The SQLite store: rows, dedup, history, rollups, retention, drain, events, audit and its error sentences."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from nonroot import as_non_root, needs_non_root
from store_rows import rows as stored
from store_size_limit import cap_at_current_size

from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.rows import AuditEntry, Event, NodeState
from factoryctl.store.sqlite import SCHEMA_VERSION, Store, StoreError

T0 = 1_700_000_040.0  # a minute boundary


def sample(node: str = "n1", t: float = T0, power: float = 300.0, gpus: int = 2, **extra: object) -> NodeSample:
    return NodeSample(
        node=node,
        time=t,
        gpus=tuple(
            GpuSample(
                node=node,
                index=i,
                uuid=f"GPU-{node}-{i}",
                name="H100",
                power_w=power + i,
                utilization_pct=50.0,
                temperature_c=60.0 + i,
                energy_j=1000.0 * t,
                power_limit_w=700.0,
                throttle_reasons=("SwPowerCap",) if i == 0 else (),
                **extra,  # type: ignore[arg-type]
            )
            for i in range(gpus)
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "state" / "factory.db")


def test_creates_wal_store_at_current_schema(store: Store) -> None:
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.integrity_check() == "ok"


def test_samples_are_stored_once_even_when_written_twice(store: Store) -> None:
    batch = [sample(t=T0), sample(t=T0 + 1)]
    assert store.write(batch) == 4
    assert store.write(batch) == 0
    assert store.count_rows()["sample"] == 4


def test_history_round_trips_values_at_nvml_resolution(store: Store) -> None:
    store.write([sample(t=T0 + s, power=300.1234 + s) for s in range(3)])
    series = store.history(["n1"], "power_w", T0 - 1, T0 + 10)
    assert [(s.node, s.gpu) for s in series] == [("n1", 0), ("n1", 1)]
    assert [p.value for p in series[0].points] == [300.123, 301.123, 302.123]
    assert series[0].points[0].time == T0


def test_slow_tier_stores_temperature_only_when_flagged(store: Store) -> None:
    store.write([sample(t=T0), sample(t=T0 + 1)], slow=[True, False])
    points = store.history(["n1"], "temperature_c", T0 - 1, T0 + 10, gpus=[0])[0].points
    assert [(p.time, p.value) for p in points] == [(T0, 60.0)]


def test_step_buckets_carry_min_and_max(store: Store) -> None:
    store.write([sample(t=T0 + s, power=100.0 + s) for s in range(120)])
    points = store.history(["n1"], "power_w", T0, T0 + 120, step=60, gpus=[0])[0].points
    assert len(points) == 2
    assert (points[0].min, points[0].max, points[0].value) == (100.0, 159.0, 129.5)


def test_rollups_serve_history_after_raw_rows_are_pruned(store: Store) -> None:
    store.write([sample(t=T0 + s, power=100.0 + s) for s in range(180)])
    assert store.rollup(now=T0 + 600) == 6  # 3 minutes x 2 GPUs
    raw_deleted, _ = store.prune(raw_retention_s=60, rollup_retention_s=86400, now=T0 + 600)
    assert raw_deleted == 360
    series = store.history(["n1"], "power_w", T0, T0 + 600, step=60, gpus=[0])[0]
    assert [(p.min, p.max) for p in series.points] == [(100.0, 159.0), (160.0, 219.0), (220.0, 279.0)]
    plain = store.history(["n1"], "power_w", T0, T0 + 600, gpus=[0])[0]
    assert [p.time for p in plain.points] == [T0, T0 + 60, T0 + 120]


def test_prune_keeps_raw_rows_not_yet_rolled_up(store: Store) -> None:
    store.write([sample(t=T0 + s) for s in range(10)])
    assert store.prune(raw_retention_s=1, rollup_retention_s=1, now=T0 + 3600) == (0, 0)


def test_export_decodes_throttle_reasons(store: Store) -> None:
    store.write([sample(t=T0)])
    rows = list(store.export(["n1"], T0 - 1, T0 + 1))
    assert rows[0]["throttle_reasons"] == ["SwPowerCap"]
    assert rows[1]["throttle_reasons"] == []
    assert rows[0]["power_w"] == 300.0
    assert rows[0]["energy_j"] == pytest.approx(1000.0 * T0)


def test_latest_and_states(store: Store) -> None:
    store.write([sample(t=T0)], states=[NodeState("n1", "up", T0, T0)])
    store.write(states=[NodeState("n2", "down", T0, None, "timeout", "n2: no answer")])
    latest = dict((s.node, (s, smp)) for s, smp in store.latest())
    assert latest["n1"][1] is not None
    assert latest["n1"][1].gpus[0].throttle_reasons == ("SwPowerCap",)
    assert latest["n2"][0].state == "down"
    assert latest["n2"][1] is None
    assert store.newest_sample_time() == T0


def test_drain_and_resume_are_persisted_with_events(store: Store) -> None:
    assert store.set_drained(["n1", "n2"], True, "bad fan", "alice") == ["n1", "n2"]
    assert store.set_drained(["n1"], True, "bad fan", "alice") == []
    again = Store(store.path)
    assert set(again.drained_nodes()) == {"n1", "n2"}
    assert again.drained_nodes()["n1"].reason == "bad fan"
    assert again.set_drained(["n1"], False, None, "bob") == ["n1"]
    assert set(again.drained_nodes()) == {"n2"}
    assert [e.kind for e in again.events(0)] == ["drain", "drain", "resume"]
    assert [e.message for e in again.events(0)][::2] == ["n1 drained by alice: bad fan", "n1 resumed by bob"]


def test_energy_does_not_count_the_rollup_minute_the_raw_window_starts_in(store: Store) -> None:
    store.write(
        [
            NodeSample("n4", T0 + 30 + s, gpus=(GpuSample("n4", 0, power_w=100.0, energy_j=100.0 * s),))
            for s in range(120)
        ]
    )
    store.rollup(now=T0 + 600)
    ((_, _, joules, source),) = store.energy(["n4"], T0 - 600, T0 + 600)
    assert source == "counter"
    assert joules == pytest.approx(100.0 * 119)


def test_events_and_audit(store: Store) -> None:
    store.add_events([Event(T0, "node_down", "n1 is down", node="n1", severity="error")])
    store.add_audit([AuditEntry(T0, "n1", 3, "set", 700.0, 450.0, False, "root", "peak price")])
    assert store.events(T0 - 1)[0].as_json()["time"] == "2023-11-14T22:14:00.000Z"
    entry = store.audit(T0 - 1, node=["n1"])[0]
    assert (entry.before_w, entry.after_w, entry.user) == (700.0, 450.0, "root")
    assert store.audit(T0 + 1) == []


def test_readonly_open_of_missing_store_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        Store(tmp_path / "none.db", readonly=True)


#: Write one sample into the store argv[1] and print the StoreError's message (exit 3), in a process of its own.
WRITE_ONE_SAMPLE = """
import sys
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.store.sqlite import Store, StoreError
from pathlib import Path
try:
    Store(Path(sys.argv[1])).write([NodeSample("n1", 1700000040.0, gpus=(GpuSample("n1", 0, power_w=300.0),))])
except StoreError as exc:
    print(exc)
    sys.exit(3)
"""


@needs_non_root
def test_read_only_file_gives_a_clear_error(store: Store) -> None:
    """Run by a user the permissions apply to (root ignores them: as root the write runs as nobody)."""
    store.close()
    os.chmod(store.path, 0o444)
    os.chmod(store.path.parent, 0o555)
    try:
        argv = as_non_root([sys.executable, "-c", WRITE_ONE_SAMPLE, str(store.path)])
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.chmod(store.path.parent, 0o755)
    assert done.returncode == 3, done.stderr
    assert re.search(r"read-only|cannot open", done.stdout), done.stdout
    reader = Store(store.path, readonly=True)
    assert reader.newest_sample_time() is None  # nothing was written
    reader.close()


def test_read_only_connection_gives_a_clear_error(store: Store) -> None:
    store.write([sample()])
    reader = Store(store.path, readonly=True)
    with pytest.raises(StoreError, match="read-only") as info:
        reader.write([sample(t=T0 + 1)])
    assert "write access" in (info.value.hint or "")


def test_full_store_gives_a_clear_error(store: Store) -> None:
    store.write([sample()])
    cap_at_current_size(store)
    with pytest.raises(StoreError, match="full"):
        store.write([sample(node=f"x{i}", t=T0 + i, gpus=8) for i in range(500)])
    assert store.integrity_check() == "ok"


def test_newer_schema_is_refused(store: Store) -> None:
    with contextlib.closing(sqlite3.connect(store.path)) as db:  # as a newer factoryctl leaves the file
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer factoryctl"):
        Store(store.path)


def test_damaged_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "factory.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="damaged"):
        Store(path)


def test_energy_from_counter_survives_a_reset_and_falls_back_to_rollups(store: Store) -> None:
    counter = [0.0, 100.0, 250.0, 10.0, 60.0]  # joules; a reboot reset the counter after the third sample
    samples = [
        NodeSample("n2", T0 + i, gpus=(GpuSample("n2", 0, power_w=100.0, energy_j=e),)) for i, e in enumerate(counter)
    ]
    store.write(samples)
    ((node, gpu, joules, source),) = store.energy(["n2"], T0 - 1, T0 + 10)
    assert (node, gpu, source) == ("n2", 0, "counter")
    assert joules == pytest.approx(250.0 + 10.0 + 50.0)
    store.write([NodeSample("n3", T0 + s, gpus=(GpuSample("n3", 0, power_w=200.0),)) for s in range(120)])
    store.rollup(now=T0 + 600)
    store.prune(raw_retention_s=1, rollup_retention_s=86400, now=T0 + 600)
    ((_, _, joules, source),) = store.energy(["n3"], T0, T0 + 600)
    assert source == "rollup"
    assert joules == pytest.approx(200.0 * 120)


def test_a_lost_gpu_keeps_its_limits_and_its_xids_in_the_latest_sample(tmp_path: Path) -> None:
    from factoryctl.model.telemetry import XidEvent

    store = Store(tmp_path / "f.db")
    full = GpuSample("n1", 0, uuid="GPU-1", name="H100", power_limit_w=700.0, power_limit_max_w=700.0)
    store.write([NodeSample("n1", T0, gpus=(full,))])
    lost = GpuSample("n1", 0, uuid="GPU-1", name="H100", xid_events=(XidEvent(79, T0 + 0.5),))
    store.write([NodeSample("n1", T0 + 1, gpus=(lost,))])
    assert stored(store.path, "SELECT uuid, power_limit_w FROM gpu") == [("GPU-1", 700.0)]
    ((_, latest),) = store.latest()
    assert latest is not None
    assert latest.gpus[0].xid_events == (XidEvent(79, T0 + 0.5),)
