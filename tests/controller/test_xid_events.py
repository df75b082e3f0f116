"""XIDs end to end: the simulated driver raises them, the live controller records one `xid` event each, and
`events` and `gpus` show them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.config import load_config
from factoryctl.controller import Controller
from factoryctl.store.sqlite import Store

pytestmark = pytest.mark.slow


@pytest.fixture
def factory(tmp_path: Path) -> Iterator[Path]:
    """A live in-process controller over two local simulated nodes; yields factory.yaml."""
    path = tmp_path / "factory.yaml"
    path.write_text(
        f"name: xid\nstate_dir: {tmp_path / 'state'}\nnodes:\n  n[1-2]: {{transport: local, sim: h100-sxm, gpus: 2}}\n"
        "controller:\n  interval_s: 0.3\n"
    )
    controller = Controller(load_config(path))
    runner = threading.Thread(target=controller.run, daemon=True)
    runner.start()
    try:
        wait_for(lambda: controller.collector is not None and controller.collector.stats()["up"] == 2)
        yield path
    finally:
        controller.request_stop()
        runner.join(30)


def xid_events(path: Path) -> list[tuple[str | None, int | None, str]]:
    store = Store(path.parent / "state" / "factory.db", readonly=True)
    try:
        return [(e.node, e.gpu, e.message) for e in store.events(0, kind="xid")]
    finally:
        store.close()


def samples_stored_after(path: Path, node: str, gpu: int) -> int:
    """How many samples of `node`/`gpu` the store holds from after its newest `xid` event (all of them carry it)."""
    store = Store(path.parent / "state" / "factory.db", readonly=True)
    try:
        newest = max(e.time for e in store.events(0, kind="xid"))
        (series,) = store.history([node], "power_w", newest, time.time() + 3600, gpus=[gpu])
        return sum(1 for point in series.points if point.time > newest)
    finally:
        store.close()


def test_every_xid_is_one_event_and_listed_by_events_and_gpus(factory: Path, cli: Any) -> None:
    for code in (13, 31, 48):
        assert cli("--config", str(factory), "sim", "inject", "n2/1", "--xid", str(code)).exit_code == 0
    wait_for(lambda: len(xid_events(factory)) >= 3)
    # Every later sample of n2/1 carries the same three XIDs: after several of them, still one event each.
    wait_for(lambda: samples_stored_after(factory, "n2", 1) >= 4)
    assert xid_events(factory) == [("n2", 1, f"n2/1: XID {code}") for code in (13, 31, 48)]

    shown = cli("--config", str(factory), "events", "--since", "30s", "--kind", "xid", "-o", "json")
    assert shown.exit_code == 0, shown.stderr
    assert [(e["node"], e["gpu"], e["kind"], e["severity"]) for e in shown.json()["items"]] == [
        ("n2", 1, "xid", "error")
    ] * 3

    gpus = cli("--config", str(factory), "gpus", "n2/1", "-o", "json")
    assert gpus.exit_code == 0, gpus.stderr
    (gpu,) = gpus.json()["items"]
    assert [x["xid"] for x in gpu["xid_events"]] == [13, 31, 48]
    events_at = sorted(e["time"] for e in shown.json()["items"])
    assert sorted(x["time"] for x in gpu["xid_events"]) == events_at  # ISO-8601, the same times as the events


def test_xid_79_is_an_xid_event_and_a_lost_gpu(factory: Path, cli: Any) -> None:
    assert cli("--config", str(factory), "sim", "inject", "n1/0", "--xid", "79").exit_code == 0
    wait_for(lambda: len(xid_events(factory)) >= 1)
    shown = cli("--config", str(factory), "events", "n1", "--since", "30s", "-o", "json")
    kinds = [e["kind"] for e in shown.json()["items"]]
    assert "xid" in kinds
    assert "gpu_lost" in kinds
    (gpu,) = cli("--config", str(factory), "gpus", "n1/0", "-o", "json").json()["items"]
    assert [x["xid"] for x in gpu["xid_events"]] == [79]
    assert gpu["uuid"] is not None  # a lost GPU still says which board it is

    from factoryctl.cli.metrics import MetricsSource

    text = MetricsSource(load_config(factory), 0, 5).text()
    labels = f'{{gpu="0",UUID="{gpu["uuid"]}",device="nvidia0",modelName="{gpu["name"]}",Hostname="n1"}}'
    assert f"DCGM_FI_DEV_XID_ERRORS{labels} 79\n" in text
    assert f"factoryctl_gpu_lost{labels} 1\n" in text
    assert 'factoryctl_gpu_lost{gpu="1",' in text
