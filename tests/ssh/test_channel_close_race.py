"""Nothing we send on a channel may follow our CLOSE: OpenSSH drops the whole connection for it.

The server closes a command's channel as soon as the command ended, whether or not we sent our EOF yet, and
paramiko's transport thread answers with our CLOSE at once. The EOF sent after `exec` (a command without stdin) used
to leave after it now and then, and sshd ended the connection shared by every other command ("ieof packet referred
to nonexistent channel"): test_many_commands_share_one_connection failed about 1 run in 25 on a loaded machine.
"""

from __future__ import annotations

import os
import shlex
import threading

from factoryctl.transport.ssh_channel import _guard, operation


def server_closed(chan, timeout: float) -> bool:
    """Wait until the server's CLOSE of a guarded channel came (answered, or held by an operation under way)."""
    return _guard(chan).peer_closed.wait(timeout)


def lost_channels(sshd, connection) -> list[str]:
    """What sshd logged about messages for channels it no longer has, on this connection."""
    port = connection.transport.sock.getsockname()[1]
    log = (sshd.root / "sshd.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "nonexistent channel" in line and f"port {port}" in line]


def test_the_server_close_waits_for_the_eof_under_way(connection, tmp_path):
    """The race made certain: the command ends, and its CLOSE comes, while our EOF is about to be sent."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    chan = connection.channel()
    chan.exec_command(shlex.join(["cat", str(gate)]))  # runs until the gate closes (the node is this machine)
    with operation(chan) as still_open:
        assert still_open
        with gate.open("wb"):  # meets the command's open, then lets it end
            pass
        assert server_closed(chan, 30)  # held back: our CLOSE is not sent while the operation runs
        assert not chan.closed
        chan.shutdown_write()  # what used to follow our CLOSE and end the connection
    assert chan.closed  # answered once the EOF went out
    with operation(chan) as still_open:
        assert not still_open  # after the server's CLOSE nothing is sent any more
    chan.close()
    assert connection.run(["echo", "still here"], timeout=60).stdout == b"still here\n"
    assert connection.transport.is_active()


def test_a_close_that_came_before_the_operation_means_send_nothing(connection):
    chan = connection.channel()
    chan.exec_command("true")
    assert server_closed(chan, 30)
    assert chan.status_event.wait(30)
    with operation(chan) as still_open:
        assert not still_open
    chan.close()
    assert connection.run(["true"], timeout=60).exit_code == 0


def test_hundreds_of_quick_commands_on_one_connection_never_lose_it(connection, sshd):
    """Commands that end at once, from many threads: each one's EOF races the server's CLOSE."""
    errors: list[BaseException] = []
    done: list[bytes] = []

    def run() -> None:
        try:
            for _ in range(20):
                done.append(connection.run(["echo", "x"], timeout=60).stdout)
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert done == [b"x\n"] * 320
    assert lost_channels(sshd, connection) == []


def test_quick_commands_fed_stdin_never_lose_the_connection(connection, sshd):
    """stdin data and its EOF race the CLOSE of a command that does not read it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(10):
                assert connection.run(["true"], timeout=60, stdin=b"x" * 100_000).exit_code == 0
                assert connection.run(["head", "-c", "1"], timeout=60, stdin=b"y" * 100_000).stdout == b"y"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert lost_channels(sshd, connection) == []
