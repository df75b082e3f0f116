"""A scraper that hangs up mid-response (every Prometheus scrape timeout does) leaves nothing on `metrics serve`'s stderr.

socketserver printed a traceback between dashed lines for each (ConnectionResetError in the body's write), many
interleaved into garbled lines when scrapes failed together. Another unexpected failure of a request is one line.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from reaping import reaped
from sshd_fixture import free_port
from waiting import wait_for

from factoryctl.cli.metrics_http import report_request_failure

#: Eight nodes of eight GPUs: a body of ~100 kB, far more than a stalled scraper's socket takes before it hangs up.
FACTORY = "name: lab\nnodes:\n  n[1-8]: {transport: local, sim: {profile: h100-sxm, gpus: 8}}\n"
REQUEST = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def scraped(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return b"DCGM_FI_DEV_POWER_USAGE" in response.read()
    except OSError:
        return False


def hang_up(port: int, read: int) -> None:
    """Ask for /metrics, read `read` bytes of the answer and hang up with a reset (SO_LINGER 0), as a timed-out scraper."""
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: the answer cannot all fit
        client.connect(("127.0.0.1", port))
        client.sendall(REQUEST)
        if read:
            client.recv(read)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_scrapers_hanging_up_mid_response_leave_stderr_quiet(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", "--config", str(config), "metrics", "serve", "--port", str(port)]
    with reaped(
        subprocess.Popen([*argv, "--min-interval", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ) as proc:
        wait_for(lambda: scraped(port), timeout=60, what="a first full scrape")
        hang_up(port, read=100)
        clients = [threading.Thread(target=hang_up, args=(port, read)) for read in (100, 100, 100, 0, 0)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(30)
        assert scraped(port)  # it still serves, and every hung-up request has been answered by then
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    said = err.decode()
    assert proc.returncode == 0  # SIGTERM is the daemon's clean stop
    assert "Traceback" not in said, said
    assert "Exception occurred" not in said, said
    assert said.splitlines() == [f"serving http://127.0.0.1:{port}/metrics", "metrics serve: stopped (SIGTERM)"], said


@pytest.mark.parametrize("hung_up", [ConnectionResetError(104, "reset"), BrokenPipeError(32, "pipe"), TimeoutError()])
def test_a_client_hanging_up_is_not_reported(hung_up: OSError, capsys: pytest.CaptureFixture[str]) -> None:
    report_request_failure(("127.0.0.1", 40000), hung_up)
    assert capsys.readouterr().err == ""


def test_another_request_failure_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    report_request_failure(("::1", 40000, 0, 0), ValueError("bad\nheader"))
    assert capsys.readouterr().err == (
        "factoryctl: metrics: a request from [::1]:40000 failed: ValueError: bad\\x0aheader\n"
    )
