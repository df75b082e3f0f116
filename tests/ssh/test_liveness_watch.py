"""One liveness watch serves every SSH connection: a thread per process between checks, not one per node.

The checks themselves (a real round trip that a frozen peer fails) are in test_commands.py.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace

import psutil
from sshd_fixture import PATIENT
from waiting import wait_for

from factoryctl.transport.ssh import SshConnection
from factoryctl.transport.ssh_pool import SshPool
from factoryctl.transport.ssh_watch import WATCH


def watch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("ssh-watch")]


def test_watched_connections_share_one_thread_that_ends_with_the_last(ssh_node):
    watched_before = WATCH.watching()  # connections other tests left open, if any
    pool = SshPool(replace(PATIENT, keepalive_s=60))  # no check is due while the test looks
    for name in ("w1", "w2", "w3"):
        pool.connect(ssh_node(name)).watch()
    assert WATCH.watching() == watched_before + 3
    names = [t.name for t in watch_threads()]
    assert names.count("ssh-watch") == 1
    assert not {"ssh-watch-w1", "ssh-watch-w2", "ssh-watch-w3"} & set(names)  # before: a sleeping thread each
    [scheduler] = [t for t in watch_threads() if t.name == "ssh-watch"]
    pool.close()
    assert WATCH.watching() == watched_before
    if watched_before == 0:
        scheduler.join(10)
        assert not scheduler.is_alive()


def counting_checks(connection: SshConnection) -> threading.Semaphore:
    """A semaphore released after each liveness check of `connection` (its real round trip still runs)."""
    checked = threading.Semaphore(0)
    probe = connection.is_alive

    def counted(timeout: float | None = None) -> bool:
        answered = probe(timeout)
        checked.release()
        return answered

    connection.is_alive = counted  # type: ignore[method-assign]
    return checked


def test_a_lone_watched_connection_is_checked_again_and_again(ssh_node):
    """The scheduler must outlive a check under way (it ended when none was queued, so the first check was the last).

    It also starts again for a connection watched after the last one closed.
    """
    pool = SshPool(replace(PATIENT, keepalive_s=60))
    pool.connect(ssh_node("first")).watch()
    pool.close()
    connection = pool.connect(ssh_node("second"))
    checked = counting_checks(connection)
    connection.watch(interval=0.2, timeout=5)
    try:
        for _ in range(3):
            assert checked.acquire(timeout=30)
        assert connection.transport.is_active()  # a live peer answered: still open
    finally:
        pool.close()


def test_a_frozen_peer_check_does_not_hold_up_the_others(sshd_factory, ssh_node, tmp_path):
    """Each check runs on a thread of its own: one waiting out a frozen peer's timeout delays no other node's."""
    frozen_server = sshd_factory()
    pool = SshPool(PATIENT)
    frozen = pool.connect(frozen_server.node("frozen", frozen_server.write_known_hosts(tmp_path / "kh")))
    live = pool.connect(ssh_node("live"))
    checked = counting_checks(live)
    processes = [psutil.Process(frozen_server.process.pid)]
    processes += processes[0].children(recursive=True)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.suspend()
    try:
        frozen.watch(interval=0.2, timeout=120)  # its first check waits out two minutes
        wait_for(lambda: frozen._watched is not None and frozen._watched.checking is not None, 30)
        live.watch(interval=0.2, timeout=60)
        for _ in range(3):  # the live node is checked again and again meanwhile
            assert checked.acquire(timeout=30)
        assert frozen._watched is not None
        assert frozen._watched.checking is not None  # still waiting on the frozen peer
        assert live.transport.is_active()
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()
        pool.close()
