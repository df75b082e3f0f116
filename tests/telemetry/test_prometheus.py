"""The Prometheus exposition: dcgm-exporter names and labels, nulls left out, node facts."""

from __future__ import annotations

import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from waiting import wait_for

from factoryctl.config import parse_config
from factoryctl.model.telemetry import GpuSample, NodeSample
from factoryctl.telemetry.prometheus import render

LINE = re.compile(r'^[A-Za-z_:][A-Za-z0-9_:]*(\{([A-Za-z_][A-Za-z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$')


def test_dcgm_names_labels_and_node_facts() -> None:
    gpu = GpuSample(
        "n1",
        0,
        uuid="GPU-abc",
        name='H100 "SXM"',
        power_w=123.5,
        energy_j=10.0,
        temperature_c=None,
        throttle_reasons=("SwPowerCap",),
    )
    text = render([NodeSample("n1", 1.0, gpus=(gpu,)), NodeSample("n2", 1.0, state="down")], drained=["n2"])
    assert (
        'DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-abc",device="nvidia0",modelName="H100 \\"SXM\\"",Hostname="n1"} 123.5'
        in text
    )
    assert "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter" in text
    assert 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{gpu="0"' in text
    assert "} 10000\n" in text  # mJ, as dcgm-exporter
    assert "DCGM_FI_DEV_GPU_TEMP" not in text  # null: left out, never invented
    assert 'reason="SwPowerCap"} 1' in text
    assert 'factoryctl_node_up{Hostname="n2"} 0' in text
    assert 'factoryctl_node_drained{Hostname="n2"} 1' in text
    for line in text.splitlines():
        assert line.startswith("# ") or LINE.match(line), line


def test_serve_answers_metrics_over_http(cli: Any, tmp_path: Path, monkeypatch: Any) -> None:
    from http.server import ThreadingHTTPServer

    from factoryctl.cli import metrics
    from factoryctl.cli.metrics import MetricsSource
    from factoryctl.signal_wake import Wake

    config = parse_config("nodes: {n1: {transport: local}}\n", tmp_path / "f.yaml", state_dir=tmp_path / "s")
    monkeypatch.setattr(
        "factoryctl.telemetry.poll.sample_node",
        lambda n, c, t: NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0, power_w=50.0),)),
    )
    source = MetricsSource(config, 60, 1)
    assert 'DCGM_FI_DEV_POWER_USAGE{gpu="0"' in source.text()
    started: list[tuple[ThreadingHTTPServer, Wake]] = []  # the server and the stop its SIGTERM would give
    real_serve = metrics.serve_until_stopped

    def capture(server: ThreadingHTTPServer, stop: Wake) -> None:
        started.append((server, stop))
        real_serve(server, stop)

    monkeypatch.setattr(metrics, "serve_until_stopped", capture)
    (tmp_path / "f.yaml").write_text(f"state_dir: {tmp_path / 's'}\nnodes: {{n1: {{transport: local}}}}\n")
    ended: list[Any] = []  # what `metrics serve` returned, should it end before it listens
    runner = threading.Thread(
        target=lambda: ended.append(cli("--config", str(tmp_path / "f.yaml"), "metrics", "serve", "--port", "0")),
        daemon=True,
    )
    runner.start()
    wait_for(lambda: bool(started) or not runner.is_alive(), timeout=30)
    if not started:
        why = f"exit {ended[0].exit_code}, stderr: {ended[0].stderr!r}" if ended else "an exception (see above)"
        pytest.fail(f"metrics serve ended before it listened: {why}")
    server, stop = started[0]
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert "DCGM_FI_DEV_POWER_USAGE" in body
    finally:
        stop.set()  # what its SIGTERM handler gives (no handler off the main thread): it ends at once, not after 10 s
        runner.join(10)
    assert not runner.is_alive(), "metrics serve did not end when stopped"
    assert ended[0].exit_code == 0, ended[0].stderr


def test_last_xid_and_lost_gpus_are_exported() -> None:
    from factoryctl.model.telemetry import XidEvent

    lost = GpuSample(
        "n1",
        1,
        uuid="GPU-lost",
        xid_events=(XidEvent(13, 5.0), XidEvent(79, 6.0)),
        null_reasons={"power_w": "gpu_lost", "utilization_pct": "gpu_lost"},
    )
    fine = GpuSample("n1", 0, uuid="GPU-ok", power_w=100.0)
    text = render([NodeSample("n1", 7.0, gpus=(fine, lost))])
    labels = '{gpu="1",UUID="GPU-lost",device="nvidia1",modelName="",Hostname="n1"}'
    assert f"DCGM_FI_DEV_XID_ERRORS{labels} 79\n" in text  # the last XID's code, as dcgm-exporter
    assert 'DCGM_FI_DEV_XID_ERRORS{gpu="0"' not in text
    assert "# TYPE DCGM_FI_DEV_XID_ERRORS gauge" in text
    assert f"factoryctl_gpu_lost{labels} 1\n" in text
    assert 'factoryctl_gpu_lost{gpu="0",UUID="GPU-ok"' in text
    assert 'factoryctl_gpu_lost{gpu="0",UUID="GPU-ok",device="nvidia0",modelName="",Hostname="n1"} 0' in text
    for line in text.splitlines():
        assert line.startswith("# ") or LINE.match(line), line


class _Failing:
    def text(self) -> str:
        raise RuntimeError("the store is on fire")


def test_a_failed_refresh_is_a_503_and_an_idle_client_is_dropped(monkeypatch) -> None:
    """A scrape that cannot be answered gets 503 (it was a traceback); a silent client does not hold a thread."""
    import socket
    import urllib.error
    from http.server import ThreadingHTTPServer

    from factoryctl.cli import metrics

    monkeypatch.setattr(metrics, "CLIENT_TIMEOUT_S", 0.5)
    server = ThreadingHTTPServer(("127.0.0.1", 0), metrics.metrics_handler(_Failing()))  # type: ignore[arg-type]
    runner = threading.Thread(target=server.serve_forever, daemon=True)
    runner.start()
    try:
        port = server.server_address[1]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert refused.value.code == 503
        with socket.create_connection(("127.0.0.1", port), timeout=10) as idle:
            assert idle.recv(1) == b""  # the server hung up on the silent client (recv would time out otherwise)
    finally:
        server.shutdown()
        server.server_close()
    runner.join(10)


def test_scrapes_read_the_live_store_every_time_but_poll_nodes_at_most_once_per_interval(tmp_path, monkeypatch) -> None:
    """While a controller writes the store each scrape reads it (a scrape showed 5 s old data); polls stay cached."""
    from factoryctl.cli.metrics import MetricsSource
    from factoryctl.telemetry.poll import PollResult

    config = parse_config("nodes: {n1: {transport: local}}\n", tmp_path / "f.yaml", state_dir=tmp_path / "s")
    watts = iter(range(100, 200))
    live = [True]
    polls = []

    def result() -> PollResult:
        return PollResult([NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0, power_w=float(next(watts))),))], [])

    monkeypatch.setattr("factoryctl.telemetry.latest.read_live", lambda c, n: result() if live[0] else None)
    monkeypatch.setattr("factoryctl.telemetry.poll.sample_node", lambda n, c, t: polls.append(1) or result().samples[0])
    source = MetricsSource(config, 60, 1)
    assert " 100\n" in source.text()
    assert " 101\n" in source.text()  # live: read again
    live[0] = False
    assert " 102\n" in source.text()
    assert " 102\n" in source.text()  # polled: cached for --min-interval
    assert polls == [1]


def test_memory_and_energy_are_whole_numbers_as_dcgm_exporter_reports_them() -> None:
    """DCGM_FI_DEV_FB_USED was 59957.1 (dcgm-exporter's is an integer number of MiB)."""
    gpu = GpuSample("n1", 0, uuid="GPU-a", memory_used_mib=59957.1, energy_j=1234.5678, power_w=301.25)
    text = render([NodeSample("n1", 7.0, gpus=(gpu,))])
    labels = '{gpu="0",UUID="GPU-a",device="nvidia0",modelName="",Hostname="n1"}'
    assert f"DCGM_FI_DEV_FB_USED{labels} 59957\n" in text
    assert f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{labels} 1234568\n" in text
    assert f"DCGM_FI_DEV_POWER_USAGE{labels} 301.25\n" in text  # a gauge in W keeps its fraction


def test_a_lost_gpu_keeps_its_stored_identity_when_no_controller_runs(tmp_path, monkeypatch) -> None:
    """Polled (no controller), the lost GPU's series had UUID "" and its XID 79 was gone: alerts resolved."""
    from factoryctl.cli.metrics import MetricsSource
    from factoryctl.model.telemetry import XidEvent
    from factoryctl.store.sqlite import Store

    config = parse_config("nodes: {n1: {transport: local}}\n", tmp_path / "f.yaml", state_dir=tmp_path / "s")
    store = Store(config.store_path)
    store.write(
        [NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0, uuid="GPU-a", name="H100", xid_events=(XidEvent(79, 1.0),)),))]
    )
    store.close()
    lost = GpuSample("n1", 0, null_reasons={"uuid": "gpu_lost", "name": "gpu_lost", "power_w": "gpu_lost"})
    monkeypatch.setattr("factoryctl.telemetry.latest.read_live", lambda c, n: None)
    monkeypatch.setattr("factoryctl.telemetry.poll.sample_node", lambda n, c, t: NodeSample("n1", 9.0, gpus=(lost,)))
    text = MetricsSource(config, 60, 1).text()
    labels = '{gpu="0",UUID="GPU-a",device="nvidia0",modelName="H100",Hostname="n1"}'
    assert f"factoryctl_gpu_lost{labels} 1\n" in text
    assert f"DCGM_FI_DEV_XID_ERRORS{labels} 79\n" in text
