"""Remote commands over a persistent connection: quoting, big outputs, timeouts, a dying sshd."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest
from sshd_fixture import PATIENT as OPTIONS

from factoryctl.errors import ExitCode, NodeError
from factoryctl.transport.ssh_pool import SshPool


def test_command_reaches_the_node_byte_for_byte(connection):
    nasty = "a'b\"c; echo pwned $(id) `id` && |&>x\n\tline two \\ * ~ $HOME {a,b} ä 日本"
    result = connection.run(["printf", "%s", nasty], timeout=60)
    assert result.stdout == nasty.encode()
    assert result.exit_code == 0


def test_exit_status_and_stderr(connection):
    result = connection.run(["sh", "-c", "echo out; echo err >&2; exit 7"], timeout=60)
    assert (result.exit_code, result.stdout, result.stderr) == (7, b"out\n", b"err\n")


def test_output_over_8_mib_on_both_streams_does_not_hang(connection):
    script = "head -c 9000000 /dev/zero; head -c 3000000 /dev/zero >&2; head -c 1000 /dev/zero"
    result = connection.run(["sh", "-c", script], timeout=30)
    assert len(result.stdout) == 9_001_000
    assert len(result.stderr) == 3_000_000


def test_timeout_signals_and_classifies(connection):
    started = time.monotonic()
    with pytest.raises(NodeError) as caught:
        connection.run(["sleep", "30"], timeout=0.5)
    assert caught.value.kind == "timeout"
    assert caught.value.exit_code == ExitCode.TIMEOUT
    assert time.monotonic() - started < 30
    assert connection.run(["true"], timeout=60).exit_code == 0


def test_many_commands_share_one_connection(connection):
    results = []

    def run() -> None:
        results.append(connection.run(["echo", "x"], timeout=60).stdout)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [b"x\n"] * 8


def test_sshd_killed_mid_command(sshd_factory, tmp_path):
    server = sshd_factory()
    spec = server.node("n1", server.write_known_hosts(tmp_path / "kh"))
    pool = SshPool(OPTIONS)
    connection = pool.connect(spec)
    assert connection.is_alive()
    killer = threading.Timer(0.5, server.kill)
    killer.start()
    started = time.monotonic()
    try:
        with pytest.raises(NodeError) as caught:
            connection.run(["sleep", "30"], timeout=20)
        assert caught.value.kind == "refused"
        assert caught.value.exit_code == ExitCode.CONNECTION
        assert time.monotonic() - started < 30
        assert not connection.is_alive(timeout=2)
        with pytest.raises(NodeError) as again:
            pool.connect(spec)
        assert again.value.exit_code == ExitCode.CONNECTION  # refused (or banner, if the freed port was taken)
    finally:
        killer.join()
        pool.close()


def test_pool_reconnects_after_the_connection_died(ssh_node):
    pool = SshPool(OPTIONS)
    spec = ssh_node()
    first = pool.connect(spec)
    first.transport.close()
    second = pool.connect(spec, check_alive=True)
    assert second is not first
    assert second.run(["true"], timeout=60).exit_code == 0
    pool.close()


def test_watchdog_closes_a_connection_to_a_frozen_peer(sshd_factory, tmp_path):
    import psutil

    server = sshd_factory()
    spec = server.node("n1", server.write_known_hosts(tmp_path / "kh"))
    pool = SshPool(OPTIONS)
    connection = pool.connect(spec)
    connection.watch(interval=0.3, timeout=1)
    frozen = [psutil.Process(server.process.pid), *psutil.Process(server.process.pid).children(recursive=True)]
    for process in frozen:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.suspend()
    try:
        deadline = time.monotonic() + 10
        while connection.transport.is_active() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not connection.transport.is_active()
    finally:
        for process in frozen:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        pool.close()


def test_closing_a_watched_connection_stops_its_watch_at_once(ssh_node):
    """The watchdog used to sleep out its interval (15 s by default) after the close, outliving its owner."""
    from dataclasses import replace

    from factoryctl.transport.ssh_watch import WATCH

    pool = SshPool(replace(OPTIONS, keepalive_s=60))
    connection = pool.connect(ssh_node("watched"))
    watching = WATCH.watching()
    connection.watch()
    assert WATCH.watching() == watching + 1
    pool.close()
    assert WATCH.watching() == watching
    assert not [t for t in threading.enumerate() if t.name == "ssh-watch-watched"]


def test_output_past_the_limit_is_dropped_and_said(ssh_node):
    from dataclasses import replace

    pool = SshPool(replace(OPTIONS, max_output_bytes=1 << 20))
    try:
        result = pool.connect(ssh_node()).run(["head", "-c", "3000000", "/dev/zero"], timeout=60)
    finally:
        pool.close()
    assert len(result.stdout) == 1 << 20
    assert b"output truncated: 1951424 bytes" in result.stderr
