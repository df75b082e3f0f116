"""`metrics serve` cannot be held by its clients: backlog, request and answer deadlines, a cap on threads, SIGTERM.

Found by a review (session 20): a listen backlog of 5 made 20 parallel scrapers wait up to 5 s to connect; a client
trickling a header byte every 5 s kept its thread for ever, and 150 of them made 152 threads; every `systemctl stop`
(SIGTERM) exited 143 with "run the command again", leaving the unit failed. Real sockets and a real server; the
deadlines are shortened in-process.
"""

from __future__ import annotations

import gzip
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reaping import reaped
from sshd_fixture import free_port
from waiting import wait_for

from factoryctl.cli import metrics_http
from factoryctl.cli.metrics import metrics_handler
from factoryctl.cli.metrics_http import encoded_body, listen

FACTORY = "name: lab\nnodes:\n  n1: {transport: local, sim: {profile: h100-sxm, gpus: 1}}\n"


class FixedText:
    """A source whose text is fixed: these tests are about the HTTP side, not about polling nodes."""

    def __init__(self, text: str = "up 1\n") -> None:
        self.body = text

    def text(self, wait_s: float = 5.0) -> str:
        return self.body


@pytest.fixture
def serving() -> Iterator[Callable[..., tuple[Any, int]]]:
    """`serve(source)`: a server answering as `metrics serve` does, and its port; shut down afterwards."""
    servers: list[Any] = []

    def serve(source: FixedText) -> tuple[Any, int]:
        server = listen("127.0.0.1", 0, metrics_handler(source))  # type: ignore[arg-type]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server, int(server.server_address[1])

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


def status_of(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def test_fifty_connections_are_queued_while_none_is_accepted() -> None:
    """The backlog holds a burst of connections: with Python's 5 the seventh connect's SYN was dropped."""
    server = listen("127.0.0.1", 0, metrics_handler(FixedText()))  # type: ignore[arg-type]
    clients: list[socket.socket] = []
    try:
        port = server.server_address[1]
        for _ in range(50):  # nothing accepts them: each one stays in the listen queue
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        assert len(clients) == 50
    finally:
        for client in clients:
            client.close()
        server.server_close()


def trickle(port: int, request: bytes) -> int:
    """Send `request` a byte every 0.1 s; the bytes sent when the server closed the connection, or -1 if it never did."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        for sent, byte in enumerate(request):
            try:
                client.sendall(bytes([byte]))
            except OSError:  # the server's reset after its close
                return sent
            readable, _, _ = select.select([client], [], [], 0.1)
            if readable:
                try:
                    if client.recv(65536) == b"":
                        return sent + 1
                except ConnectionResetError:
                    return sent + 1
                return -1  # an answer: the request was read whole
    return -1


def test_a_trickling_client_is_cut_at_the_request_deadline_and_others_are_served(
    serving: Callable[..., tuple[Any, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A header byte just before every idle timeout held a thread for ever (one byte every 5 s, 10 s timeout)."""
    monkeypatch.setattr(metrics_http, "REQUEST_DEADLINE_S", 1.0)
    _, port = serving(FixedText())
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 120 + b"\r\n\r\n"  # ~15 s at 0.1 s a byte
    cut_at: list[int] = []
    trickler = threading.Thread(target=lambda: cut_at.append(trickle(port, request)), daemon=True)
    trickler.start()
    assert status_of(port) == 200  # served meanwhile
    trickler.join(60)
    assert cut_at, "the trickling client was still connected after 60 s"
    assert 0 < cut_at[0] < len(request), f"the server read the whole trickled request ({cut_at[0]})"
    assert status_of(port) == 200


def test_a_client_not_taking_its_answer_is_cut_at_the_answer_deadline(
    serving: Callable[..., tuple[Any, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer far larger than the sockets' buffers, its reader stalled: the server stops sending and hangs up."""
    monkeypatch.setattr(metrics_http, "RESPONSE_DEADLINE_S", 0.3)
    body = "x" * (16 << 20)
    _, port = serving(FixedText(body))
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect(("127.0.0.1", port))
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        readable, _, _ = select.select([client], [], [], 30)
        assert readable, "no answer began in 30 s"  # the answer's deadline runs from here
        assert status_of(port) == 200  # served while the stalled reader holds its thread
        time.sleep(1.0)  # stalled past the deadline
        received = 0
        client.settimeout(30)
        while True:  # read what was sent, quickly now, until the server's end of it
            try:
                chunk = client.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += len(chunk)
    assert received < len(body), "the whole answer was sent to a stalled reader"


def test_connections_past_the_thread_cap_get_a_quick_503(
    serving: Callable[..., tuple[Any, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No thread for a connection past the cap: 150 slow clients made 152 threads; now the next are refused at once."""
    monkeypatch.setattr(metrics_http, "MAX_HANDLER_THREADS", 3)
    _, port = serving(FixedText())
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]  # silent: a thread each
    # accepted in turn by the one accepting thread, which takes their places before it accepts the next
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as extra:
            extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := extra.recv(65536):  # the 503, then the server's close
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert b"Retry-After: 1\r\n" in answer
    finally:
        for client in held:
            client.close()
    wait_for(lambda: status_of(port) == 200, timeout=30, what="a scrape served once the held connections closed")


def test_encoded_body_is_gzip_only_when_asked() -> None:
    body = b"DCGM_FI_DEV_POWER_USAGE 1\n" * 100
    plain, headers = encoded_body(body, None)
    assert (plain, headers) == (body, [("Vary", "Accept-Encoding")])
    packed, headers = encoded_body(body, "deflate, gzip;q=0.5")
    assert gzip.decompress(packed) == body
    assert headers == [("Vary", "Accept-Encoding"), ("Content-Encoding", "gzip")]
    assert encoded_body(body, "gzip;q=0")[0] == body


def serve_process(config: Path, *options: str) -> tuple[subprocess.Popen[bytes], int]:
    """`metrics serve` started as a real process (signals reach it as they would under systemd), and its port."""
    port = free_port()
    argv = [sys.executable, "-m", "factoryctl", *options, "--config", str(config), "metrics", "serve"]
    argv += ["--port", str(port)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE), port


def scrape_text(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_sigterm_is_a_clean_stop_however_many_come(tmp_path: Path) -> None:
    """`systemctl stop` left the unit failed: exit 143, `factoryctl: terminated` and "run the command again"."""
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    started, port = serve_process(config)
    with reaped(started) as proc:
        wait_for(lambda: "DCGM_FI_DEV_POWER_USAGE" in scrape_text(port), timeout=60, what="a first scrape")
        for _ in range(5):  # a burst: still one clean stop
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert err.decode() == f"serving http://127.0.0.1:{port}/metrics\nmetrics serve: stopped (SIGTERM)\n"


def test_quiet_sigterm_says_nothing(tmp_path: Path) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text(FACTORY)
    started, port = serve_process(config, "-q")
    with reaped(started) as proc:
        wait_for(lambda: "DCGM_FI_DEV_POWER_USAGE" in scrape_text(port), timeout=60, what="a first scrape")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err.decode()) == (0, "")


def test_a_serving_thread_that_dies_ends_the_wait_with_its_error() -> None:
    """A bug out of `serve_forever` ended the process while it ran in the main thread; on its own thread it left the
    process up, serving nothing, until a stop came (systemd saw a healthy unit)."""
    from factoryctl.cli.metrics import serve_until_stopped
    from factoryctl.signal_wake import Wake

    class Broken(metrics_http.MetricsServer):
        def service_actions(self) -> None:  # called by `serve_forever`'s loop, as a bug there would raise
            raise RuntimeError("a bug in the serving loop")

    server = Broken(("127.0.0.1", 0), metrics_handler(None))  # type: ignore[arg-type]
    outcome: list[BaseException] = []

    def wait() -> None:
        try:
            serve_until_stopped(server, Wake())
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    waiter.join(60)
    assert not waiter.is_alive(), "the wait went on with nothing served"
    assert [str(e) for e in outcome] == ["a bug in the serving loop"]
