"""`metrics serve` answers every scrape within its scraper's deadline, over IPv6 too, with HEAD and gzip.

With no controller, one node whose sshd accepts and never speaks held every scrape ~10 s (the SSH banner wait):
past Prometheus's 10 s scrape timeout, so the whole target failed, and concurrent scrapes queued behind it.
"""

from __future__ import annotations

import gzip
import http.client
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reaping import reaped
from silent_listener import silent_listener
from waiting import wait_for

from factoryctl.cli.metrics import DEFAULT_SCRAPE_WAIT_S, MetricsSource, metrics_handler
from factoryctl.cli.metrics_http import LANDING_PAGE, accepts_gzip, listen, scrape_wait
from factoryctl.config import load_config, parse_config
from factoryctl.model.telemetry import GpuSample, NodeSample

HEADER = "X-Prometheus-Scrape-Timeout-Seconds"


@pytest.fixture
def serving() -> Iterator[Any]:
    """`serve(source, address)`: the port of an HTTP server answering as `metrics serve` does; shut down afterwards."""
    servers: list[Any] = []

    def serve(source: Any, address: str = "127.0.0.1") -> int:
        server = listen(address, 0, metrics_handler(source))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return int(server.server_address[1])

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def get(port: int, headers: dict[str, str] | None = None, host: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"http://{host}:{port}/metrics", headers=headers or {})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, dict(response.headers), response.read()


def no_poll_running() -> bool:
    return not any(thread.name == "metrics-poll" for thread in threading.enumerate())


def test_a_hung_node_is_served_down_within_the_scrape_timeout(tmp_path: Path, serving: Any) -> None:
    """A real listener that never sends a banner, as an SSH node, next to a simulated local node."""
    with silent_listener() as hung_port:
        config = tmp_path / "factory.yaml"
        config.write_text(
            f"name: t\nstate_dir: {tmp_path / 'state'}\n"
            f"ssh: {{user: root, identity_file: {tmp_path / 'no-key'}, known_hosts: {tmp_path / 'known_hosts'},"
            " connect_timeout_s: 30}\n"  # the poll waits 30 s for the banner: a scrape waiting for it would too
            "nodes:\n  l1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"
            f"  hung: {{host: 127.0.0.1, port: {hung_port}}}\n"
        )
        port = serving(MetricsSource(load_config(config), 5.0, 60.0))
        started = time.monotonic()
        status, _, body = get(port, {HEADER: "4"})  # 3 s for the nodes: l1 answers in that, the hung one would take 30
        took = time.monotonic() - started
        text = body.decode()
    wait_for(no_poll_running, timeout=60, what="the poll ending once the hung node's socket closed")
    assert status == 200
    assert took < 20, f"the scrape took {took:.1f} s: it waited for the hung node (30 s)"
    assert 'Hostname="hung"' not in text  # not heard from yet: unknown, left out (not down: no alert on a restart)
    assert 'factoryctl_node_up{Hostname="l1"} 1' in text
    power = [line for line in text.splitlines() if line.startswith("DCGM_FI_DEV_POWER_USAGE{")]
    assert len(power) == 1
    assert 'Hostname="l1"} ' in power[0]  # the local node's GPU, and no value of the hung node's


def test_scrapes_share_one_poll_and_a_late_answer_serves_the_next_scrape(tmp_path: Path, monkeypatch: Any) -> None:
    config = parse_config("nodes: {n1: {transport: local}}\n", tmp_path / "f.yaml", state_dir=tmp_path / "s")
    release = threading.Event()
    calls: list[str] = []

    def slow_node(node: Any, config: Any, timeout: float) -> NodeSample:
        calls.append(node.name)
        release.wait(60)
        return NodeSample("n1", 1.0, gpus=(GpuSample("n1", 0, power_w=77.0),))

    monkeypatch.setattr("factoryctl.telemetry.poll.sample_node", slow_node)
    source = MetricsSource(config, 60.0, 1.0)
    texts: list[str] = []
    scrapes = [threading.Thread(target=lambda: texts.append(source.text(0.5)), daemon=True) for _ in range(3)]
    try:
        for scrape in scrapes:
            scrape.start()
        for scrape in scrapes:
            scrape.join(30)
        assert len(texts) == 3, "a scrape waited for the node past its deadline"
        assert all('Hostname="n1"' not in text for text in texts)  # no answer yet: left out, not down
        assert calls == ["n1"]  # one poll for the three scrapes
    finally:
        release.set()
    wait_for(lambda: 'factoryctl_node_up{Hostname="n1"} 1' in source.text(0.5), timeout=30, what="the late answer")
    assert " 77\n" in source.text(0.5)
    assert calls == ["n1"]  # the late answer is served: no second poll within --min-interval


def test_a_node_down_in_the_poll_before_is_not_waited_for(tmp_path: Path, monkeypatch: Any) -> None:
    """Else a hung node made every scrape last its whole wait (9 s of Prometheus's 10), poll after poll."""
    from factoryctl.errors import NodeError

    config = parse_config(
        "nodes: {ok: {transport: local}, dead: {transport: local}}\n", tmp_path / "f.yaml", state_dir=tmp_path / "s"
    )
    release = threading.Event()
    polls_of_dead: list[int] = []

    def sample(node: Any, config: Any, timeout: float) -> NodeSample:
        if node.name == "ok":
            return NodeSample("ok", 1.0, gpus=(GpuSample("ok", 0, power_w=77.0),))
        polls_of_dead.append(1)
        if len(polls_of_dead) > 1:
            release.wait(60)  # hung from its second poll on
        raise NodeError("dead", "banner", "dead: sent no SSH banner")

    monkeypatch.setattr("factoryctl.telemetry.poll.sample_node", sample)
    source = MetricsSource(config, 0.0, 1.0)
    try:
        assert 'factoryctl_node_up{Hostname="dead"} 0' in source.text(30)  # the first poll: dead failed
        wait_for(no_poll_running, timeout=30, what="the first poll's end")  # the next scrape starts a second poll
        texts: list[str] = []
        scrape = threading.Thread(target=lambda: texts.append(source.text(30)), daemon=True)
        scrape.start()
        scrape.join(20)
        assert texts, "the scrape waited for a node that was down in the poll before"
        wait_for(lambda: len(polls_of_dead) == 2, timeout=30, what="a second poll, dead hanging in it")
        assert not release.is_set()
        assert 'factoryctl_node_up{Hostname="ok"} 1' in texts[0]
        assert 'factoryctl_node_up{Hostname="dead"} 0' in texts[0]
    finally:
        release.set()


def test_the_scrape_deadline_comes_from_prometheus_s_header() -> None:
    assert scrape_wait("10") == 9.0  # a second is kept for rendering and sending
    assert scrape_wait("2") == 1.5  # at most a quarter of a short deadline
    for no_deadline in (None, "", "soon", "nan", "inf", "0", "-3"):
        assert scrape_wait(no_deadline) == DEFAULT_SCRAPE_WAIT_S
    assert DEFAULT_SCRAPE_WAIT_S < 10


def test_gzip_is_sent_only_when_asked() -> None:
    assert accepts_gzip("gzip")
    assert accepts_gzip("identity, GZIP;q=0.5")
    assert not accepts_gzip(None)
    assert not accepts_gzip("deflate, br")
    assert not accepts_gzip("gzip;q=0")


class _Fixed:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def text(self, wait_s: float) -> str:
        self.waits.append(wait_s)
        return "# TYPE up gauge\nup 1\n" * 1000


def test_head_gzip_and_a_landing_page(serving: Any) -> None:
    source = _Fixed()
    port = serving(source)
    plain = source.text(0).encode()
    status, headers, body = get(port, {"Accept-Encoding": "gzip", HEADER: "10"})
    assert (status, headers["Content-Encoding"], headers["Vary"]) == (200, "gzip", "Accept-Encoding")
    assert gzip.decompress(body) == plain
    assert int(headers["Content-Length"]) == len(body) < len(plain)
    assert source.waits[-1] == 9.0  # the header's deadline reached the source
    status, headers, body = get(port)
    assert (status, body, headers.get("Content-Encoding")) == (200, plain, None)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("HEAD", "/metrics")
        head = connection.getresponse()
        assert (head.status, head.read(), int(head.getheader("Content-Length") or 0)) == (200, b"", len(plain))
        connection.request("GET", "/")
        landing = connection.getresponse()
        assert (landing.status, landing.read()) == (200, LANDING_PAGE)
        assert b'href="/metrics"' in LANDING_PAGE
    finally:
        connection.close()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv6_address_is_listened_on(serving: Any) -> None:
    port = serving(_Fixed(), "::1")
    assert get(port, host="[::1]")[0] == 200


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_the_banner_shows_an_ipv6_address_in_brackets(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n")
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--address", "::1"]
    with reaped(subprocess.Popen([*argv, "--port", "0"], stderr=subprocess.PIPE)) as proc:
        assert proc.stderr is not None
        first = proc.stderr.readline().decode()  # it exits (EOF) if it cannot listen: never hangs
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
    assert first.startswith("serving http://[::1]:"), first
    assert first.endswith("/metrics\n"), first


def test_an_empty_address_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("name: lab\nnodes:\n  n1: {transport: local}\n")
    result = cli("--config", str(config), "metrics", "serve", "--address", "", "--port", "0")
    assert result.exit_code == 2
    assert "--address is empty" in result.stderr
    assert "give --address an address of this machine" in result.stderr


def test_framebuffer_free_is_exported_as_dcgm_exporter_does() -> None:
    from factoryctl.telemetry.prometheus import render

    known = GpuSample("n1", 0, uuid="GPU-a", memory_total_mib=81559.0, memory_used_mib=1000.4)
    unknown = GpuSample("n1", 1, uuid="GPU-b", memory_used_mib=5.0)  # no total: no free, never invented
    text = render([NodeSample("n1", 7.0, gpus=(known, unknown))])
    assert "# HELP DCGM_FI_DEV_FB_FREE Framebuffer memory free (in MiB).\n# TYPE DCGM_FI_DEV_FB_FREE gauge\n" in text
    assert 'DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="",Hostname="n1"} 80559\n' in text
    assert 'DCGM_FI_DEV_FB_FREE{gpu="1"' not in text


def test_a_non_finite_value_is_left_out_not_the_whole_scrape() -> None:
    from factoryctl.telemetry.prometheus import render

    odd = GpuSample(
        "n1", 0, power_w=float("nan"), temperature_c=float("inf"), memory_used_mib=float("-inf"), utilization_pct=42.0
    )
    text = render([NodeSample("n1", 7.0, gpus=(odd,))])
    assert 'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="",device="nvidia0",modelName="",Hostname="n1"} 42\n' in text
    for absent in ("DCGM_FI_DEV_POWER_USAGE", "DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_USED"):
        assert absent not in text
    assert "nan" not in text.lower()
    assert "inf" not in text.lower()
